"""Feature cache on both databases, manifest extraction with bad input, and `musicrec features extract`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select
from typer.testing import CliRunner

from catalog.db import session_scope
from catalog.manifest import read
from catalog.models import FeatureSet, Song
from emotion.features.cache import FeatureCache, get_or_extract, load_features, stored_version
from emotion.features.extract import Job, extract, extract_manifest
from emotion.features.lld import LLDEncoder

SR = 16000
GOOD_LYRICS = (
    "[00:01.00]I walk alone in the rain tonight\n[00:04.00]and you are not here with me\n[00:12.00]Lyrics by: Someone\n[00:13.00]so I sing it again x2\n"
)


def _tone(seconds: float, freq: float = 220.0, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    return (amp * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _wav(path: Path, y: np.ndarray) -> Path:
    sf.write(path, y, SR)
    return path


def _count(url: str) -> int:
    with session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(FeatureSet)) or 0


def test_get_or_extract_records_once(db_url: str) -> None:
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.ones((3, 4), dtype=np.float32)

    enc = LLDEncoder()
    with session_scope(db_url) as s:
        first = get_or_extract(s, "audio", "a" * 64, enc, compute)
    with session_scope(db_url) as s:
        second = get_or_extract(s, "audio", "a" * 64, enc, compute)
    second_none = get_or_extract(None, "audio", "a" * 64, enc, compute)
    assert len(calls) == 1 and _count(db_url) == 1
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(second_none.vectors, first.vectors)
    with session_scope(db_url) as s:
        row = s.scalars(select(FeatureSet)).one()
        assert (row.modality, row.encoder_name, row.encoder_version, row.shape) == ("audio", "lld", stored_version("audio", "1"), [3, 4])


def test_extract_manifest_cache_hit_and_bad_input(db_url: str, tmp_path: Path) -> None:
    _wav(tmp_path / "good.wav", _tone(13.0))
    _wav(tmp_path / "short.wav", _tone(1.0))
    _wav(tmp_path / "silent.wav", np.zeros(5 * SR, dtype=np.float32))
    _wav(tmp_path / "clipped.wav", np.clip(_tone(4.0, amp=3.0), -1, 1))
    (tmp_path / "good.lrc").write_text(GOOD_LYRICS, encoding="utf-8")
    (tmp_path / "zh.lrc").write_text("[00:01.00]我爱你中国\n[00:03.00]你是我的眼\n", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("you don’t know the way I feel for you tonight".encode("cp1252"))
    (tmp_path / "m.csv").write_text(
        "id,label,audio,lyrics,group,split\n"
        "good,sad,good.wav,good.lrc,g1,train\n"
        "short,happy,short.wav,zh.lrc,g2,train\n"
        "silent,angry,silent.wav,,g3,train\n"
        "clipped,relaxed,clipped.wav,latin.txt,g4,train\n"
        "missing,sad,nothere.wav,,g5,train\n"
    )

    class CountingLyrics:
        name, version, dim = "count-lyrics", "1", 2
        calls = 0

        def encode(self, segments: list[str]) -> np.ndarray:
            CountingLyrics.calls += 1
            return np.array([[len(s), s.count("\n")] for s in segments], dtype=np.float32)

    manifest = read(tmp_path / "m.csv")
    res = extract_manifest(manifest, LLDEncoder(), CountingLyrics(), progress=False)
    good = res["good"]
    assert good.audio is not None and good.audio.shape == (2, 248)
    assert list(good.audio.start_s) == [0.0, 10.0] and list(good.audio.end_s) == [10.0, 13.0]
    assert good.lyrics is not None and list(good.lyrics.window) == [0, 1]
    assert good.lyrics.vectors[1, 0] == len("so I sing it again")
    assert "shorter than the minimum segment" in res["short"].errors["audio"]
    assert "not English" in res["short"].errors["lyrics"]
    assert "silent" in res["silent"].errors["audio"]
    assert any("clipped" in n for n in res["clipped"].notes)
    assert any("not UTF-8" in n for n in res["clipped"].notes) and res["clipped"].lyrics is not None
    assert "file not found" in res["missing"].errors["audio"] or "cannot read" in res["missing"].errors["audio"]
    rows = _count(db_url)
    assert rows == 4  # good audio+lyrics, clipped audio+lyrics

    cache = FeatureCache()
    again = extract_manifest(manifest, LLDEncoder(), CountingLyrics(), progress=False, cache=cache, workers=2)
    assert cache.hits == 4 and cache.misses == 0 and CountingLyrics.calls == 2
    np.testing.assert_array_equal(again["good"].audio.vectors, good.audio.vectors)
    assert _count(db_url) == rows


def test_worker_processes_match_serial(tmp_path: Path, db_url: str) -> None:
    jobs = [Job(f"s{i}", _wav(tmp_path / f"s{i}.wav", _tone(6.0, 200.0 + 50 * i, seed=i))) for i in range(3)]
    serial = extract(jobs, LLDEncoder(), progress=False, cache=FeatureCache(record=False, store=None))
    from catalog.store import FileStore

    parallel = extract(jobs, LLDEncoder(), progress=False, workers=2, cache=FeatureCache(FileStore(tmp_path / "other")))
    for j in jobs:
        np.testing.assert_array_equal(serial[j.id].audio.vectors, parallel[j.id].audio.vectors)


def test_cli_extract_manifest_and_songs(db_url: str, tmp_path: Path) -> None:
    from catalog.models import AudioAsset, Lyrics
    from catalog.store import FileStore
    from cli.main import app

    _wav(tmp_path / "a.wav", _tone(14.0))
    (tmp_path / "m.csv").write_text("id,label,audio,lyrics,group,split\na,sad,a.wav,,g,train\nb,sad,,,g2,train\n")
    runner = CliRunner()
    out = runner.invoke(app, ["features", "extract", "--manifest", str(tmp_path / "m.csv"), "--audio-encoder", "lld",
                              "--lyrics-encoder", "none", "--report", str(tmp_path / "r.json")])
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["extracted"] == 1 and report["items"][0]["audio_segments"] == 2

    store = FileStore()
    digest, stored = store.put_file("audio", tmp_path / "a.wav")
    with session_scope(db_url) as s:
        ok = Song(title="ok", fingerprint="f1", status="new")
        ok.audio = AudioAsset(sha256=digest, path=store.relative(stored), format="wav", sample_rate=SR, channels=1,
                              duration_s=14.0, size_bytes=stored.stat().st_size)
        bad = Song(title="bad", fingerprint="f2", status="new")
        bad.lyrics = Lyrics(raw_text="[00:01.00]我爱你中国\n", lines=[], sha256="z" * 64)
        s.add_all([ok, bad])
    out = runner.invoke(app, ["features", "extract", "--songs", "new", "--audio-encoder", "lld", "--lyrics-encoder", "none"])
    assert out.exit_code == 0, out.output
    with session_scope(db_url) as s:
        songs = {x.title: x for x in s.scalars(select(Song))}
        assert songs["ok"].status == "features"
        assert songs["bad"].status == "failed" and songs["bad"].failed_stage == "features"
        assert songs["bad"].failure_reason == "no audio and no lyrics"
        rows = s.scalars(select(FeatureSet)).all()
        assert len(rows) == 1 and rows[0].content_sha256 == digest
        assert load_features(store.resolve(rows[0].path)).shape == (2, 248)


def test_cli_refuses_bad_options(tmp_path: Path) -> None:
    from cli.main import app

    out = CliRunner().invoke(app, ["features", "extract", "--audio-encoder", "lld"])
    assert out.exit_code == 2 and "exactly one of" in out.output
    (tmp_path / "m.csv").write_text("id,label,audio,lyrics,group,split\n")
    out = CliRunner().invoke(app, ["features", "extract", "--manifest", str(tmp_path / "m.csv"), "--audio-encoder", "nope"])
    assert out.exit_code == 2 and "unknown audio encoder" in out.output


def test_encoder_versions_fingerprint_weight_contents_not_names(tmp_path: Path) -> None:
    """Swapping weights under the same name gives another encoder version, so stale features are never reused."""
    import shutil

    from emotion.features.cache import weights_fingerprint
    from emotion.features.musicnn import MusicnnEncoder, weights_path

    same, other = tmp_path / "a" / weights_path().name, tmp_path / "b" / weights_path().name
    for p in (same, other):
        p.parent.mkdir()
        shutil.copy(weights_path(), p)
    data = bytearray(other.read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor value
    other.write_bytes(bytes(data))
    base = MusicnnEncoder(device="cpu").version
    assert MusicnnEncoder(same, device="cpu").version == base
    assert MusicnnEncoder(other, device="cpu").version != base
    folder = tmp_path / "bert"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "w.bin").write_bytes(b"\x00" * 8)
    before = weights_fingerprint(folder)
    (folder / "sub" / "w.bin").write_bytes(b"\x00" * 7 + b"\x01")
    assert weights_fingerprint(folder) != before


def test_combined_encoder_concatenates_parts_cached_on_their_own(tmp_path: Path) -> None:
    """"lld+lld-short" style combinations: each part cached under its own key, vectors side by side per segment."""
    from emotion.features.registry import CombinedEncoder

    wav = _wav(tmp_path / "a.wav", _tone(12.0))
    a, b = LLDEncoder(), LLDEncoder(frame_s=1.0)
    cache = FeatureCache(record=False)
    combined = CombinedEncoder([a, b])
    assert combined.dim == a.dim + b.dim and combined.name == "lld+lld"
    res = extract([Job("x", wav)], combined, cache=cache, progress=False)["x"]
    alone = extract([Job("x", wav)], b, cache=cache, progress=False)["x"]
    assert cache.hits == 1 and cache.misses == 2  # the second part was already cached by the combination
    assert res.audio.vectors.shape == (len(alone.audio), a.dim + b.dim)
    assert np.array_equal(res.audio.vectors[:, a.dim:], alone.audio.vectors)


def test_audio_features_are_keyed_by_the_decode_version(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audio features cached under one catalog.audio.DECODE_VERSION are not returned once it changes (they are
    extracted again, recorded in a row of their own); lyrics features, which decode no audio, still are."""
    from catalog import audio

    class Lyrics:
        name, version, dim = "len-lyrics", "1", 1

        def encode(self, segments: list[str]) -> np.ndarray:
            return np.array([[len(s)] for s in segments], dtype=np.float32)

    (tmp_path / "a.lrc").write_text(GOOD_LYRICS, encoding="utf-8")
    jobs = [Job("a", _wav(tmp_path / "a.wav", _tone(6.0)), tmp_path / "a.lrc")]
    caches = [FeatureCache() for _ in range(3)]
    first = extract(jobs, LLDEncoder(), Lyrics(), progress=False, cache=caches[0])
    extract(jobs, LLDEncoder(), Lyrics(), progress=False, cache=caches[1])
    old = audio.DECODE_VERSION
    monkeypatch.setattr(audio, "DECODE_VERSION", f"{old}-next")
    after = extract(jobs, LLDEncoder(), Lyrics(), progress=False, cache=caches[2])
    assert [(c.hits, c.misses) for c in caches] == [(0, 2), (2, 0), (1, 1)]  # the last: lyrics hit, audio extracted again
    np.testing.assert_array_equal(after["a"].audio.vectors, first["a"].audio.vectors)
    with session_scope(db_url) as s:
        rows = {(r.modality, r.encoder_name, r.encoder_version) for r in s.scalars(select(FeatureSet))}
    lld = LLDEncoder()
    assert rows == {("audio", lld.name, f"{lld.version}+dec{old}"), ("audio", lld.name, f"{lld.version}+dec{old}-next"),
                    ("lyrics", "len-lyrics", "1")}


def test_stored_versions_fit_the_column(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version longer than feature_sets.encoder_version (64) is stored as a prefix and a hash of the whole: recorded
    on both databases, found again, distinct from its neighbours, and still keyed by the decode version."""
    from catalog import audio
    from catalog.store import FileStore
    from emotion.features.cache import VERSION_MAX, SegmentFeatures, stored_version

    assert stored_version("lyrics", "1") == "1" and stored_version("audio", "1") == f"1+dec{audio.DECODE_VERSION}"
    whisper = "tiny.en.L4.1a5afae06a4d.1.int8+seg10h5m2.5"  # an int8 Whisper at a non-default segmentation
    assert stored_version("audio", whisper) == f"{whisper}+dec{audio.DECODE_VERSION}"
    stack = "tiny.en.L4.1a5afae06a4d.1.int8+base.L6.d01c3014881c.1.int8:frames:prep1"  # a WhisperStack's speech frames
    stored = stored_version("speech", stack)
    assert len(stored) == VERSION_MAX and stored.startswith(stack[:40]) and stored == stored_version("speech", stack)
    assert stored_version("speech", stack + "x") != stored and stored_version("lyrics", "x" * 65) != stored_version("lyrics", "x" * 66)

    feats = SegmentFeatures(np.ones((2, 3), dtype=np.float32))
    recorded, unrecorded = FeatureCache(), FeatureCache(FileStore(tmp_path / "store"), record=False)
    for cache in (recorded, unrecorded):
        cache.save("speech", "b" * 64, "whisper", stack, feats)
        hit = cache.lookup("speech", "b" * 64, "whisper", stack)
        assert hit is not None and hit.shape == (2, 3)
    with session_scope(db_url) as s:
        assert s.scalars(select(FeatureSet.encoder_version)).all() == [stored]
    monkeypatch.setattr(audio, "DECODE_VERSION", f"{audio.DECODE_VERSION}-next")
    assert stored_version("speech", stack) != stored
    assert recorded.lookup("speech", "b" * 64, "whisper", stack) is None
    assert unrecorded.lookup("speech", "b" * 64, "whisper", stack) is None
