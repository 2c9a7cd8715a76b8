"""emotion_models rows, activation and catalog labelling on SQLite and PostgreSQL; a failing song is recorded, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import AudioAsset, EmotionLabel, EmotionModel, FeatureSet, Lyrics, Song
from catalog.store import FileStore
from emotion import artifact
from emotion.data import LABELS, SongSample
from emotion.label import label_songs
from emotion.train import TrainConfig, train_model


def tiny_audio_model(path: Path) -> Path:
    """A SongGATNet trained for one epoch on synthetic 248-d lld-shaped vectors (a shape-only stand-in)."""
    rng = np.random.default_rng(0)
    samples = [SongSample(id=str(i), label=LABELS[i % 4], audio=rng.normal(size=(2, 248)).astype(np.float32)) for i in range(8)]
    cfg = TrainConfig(model="songgatnet", epochs=1, batch_size=4, threads=1)
    result = train_model(samples, samples[:4], cfg, progress=False)
    config = {**cfg.to_json(), "modalities": ["audio"], "encoders": {"audio": {"name": "lld", "version": "1", "dim": 248}}}
    return artifact.save(path, result.model, config, result.standardizer, result.dims, {"val": result.val_metrics})


def add_song(s, title: str, audio: bytes | None = None, lyrics: str | None = None) -> int:
    song = Song(title=title, fingerprint=title.ljust(64, "0")[:64], status="new")
    s.add(song)
    s.flush()
    if audio is not None:
        digest, dest = FileStore().put_bytes("audio", audio, ".wav")
        s.add(AudioAsset(song_id=song.id, sha256=digest, path=FileStore().relative(dest), format="wav", sample_rate=16000,
                         channels=1, duration_s=6.0, size_bytes=len(audio)))
    if lyrics is not None:
        s.add(Lyrics(song_id=song.id, raw_text=lyrics, lines=[], sha256=title.ljust(64, "1")[:64]))
    return song.id


def tone(tmp_path: Path, freq: float) -> bytes:
    t = np.arange(6 * 16000) / 16000
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(int(freq)).normal(size=t.size)
    path = tmp_path / f"tone{int(freq)}.wav"
    sf.write(path, y.astype(np.float32), 16000)
    return path.read_bytes()


@pytest.mark.slow
def test_register_activate_and_label_catalog(db_url: str, tmp_path: Path) -> None:
    art = tiny_audio_model(tmp_path / "model")
    first = artifact.register(art, db_url)
    assert artifact.register(art, db_url) == first  # same name+version: updated, not duplicated
    second_dir = tiny_audio_model(tmp_path / "model2")
    cfg = json.loads((second_dir / "config.json").read_text())
    cfg["version"] = "other"
    (second_dir / "config.json").write_text(json.dumps(cfg))
    second = artifact.register(second_dir, db_url, activate=True)
    artifact.activate(first, db_url)
    with session_scope(db_url) as s:
        rows = {r.id: r for r in s.scalars(select(EmotionModel))}
        assert set(rows) == {first, second} and rows[first].active and not rows[second].active
        assert rows[first].kind == "song" and rows[first].encoder_ids["audio"]["name"] == "lld"
        assert rows[first].artifact_path == str(art.resolve())
    with pytest.raises(artifact.ArtifactError, match="no song emotion model"):
        artifact.activate(9999, db_url)

    with session_scope(db_url) as s:
        good = [add_song(s, "low tone", tone(tmp_path, 220.0)), add_song(s, "high tone", tone(tmp_path, 880.0))]
        broken = add_song(s, "broken", b"RIFF\x00\x00\x00\x00WAVEjunk")
        no_input = add_song(s, "lyrics only", lyrics="[00:01.00]la la la")  # the audio model has nothing to read
    report = label_songs("new", batch_size=2, url=db_url, progress=False)
    assert (report.labelled, report.failed) == (2, 2)
    with session_scope(db_url) as s:
        labels = {r.song_id: r for r in s.scalars(select(EmotionLabel))}
        assert set(labels) == set(good)
        for r in labels.values():
            assert r.model_id == first and r.label in LABELS
            assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
            assert r.confidence == pytest.approx(max(r.probabilities.values()))
        assert all(s.get(Song, i).status == "labelled" for i in good)
        bad = s.get(Song, broken)
        assert (bad.status, bad.failed_stage) == ("failed", "emotion") and "audio" in bad.failure_reason
        assert s.get(Song, no_input).status == "failed"
        assert s.scalar(select(func.count()).select_from(FeatureSet)) >= 2  # features went through the cache
    again = subprocess.run([sys.executable, "-m", "cli.main", "label", "--new"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"model {first}: labelled 0, failed 0" in again.stdout  # labelled songs are not redone, failed ones wait for --all
    everything = label_songs("all", url=db_url, progress=False)
    assert everything.labelled == 2 and everything.failed == 2

    listed = subprocess.run([sys.executable, "-m", "cli.main", "models", "list", "--json"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout.strip().splitlines()[-1])
    assert [d["id"] for d in data if d["active"]] == [first]


def test_only_a_quadrant_model_can_label_the_catalog(db_url: str, tmp_path: Path) -> None:
    art = tiny_audio_model(tmp_path / "mirex")
    cfg = json.loads((art / "config.json").read_text())
    cfg["label_set"], cfg["version"] = "mirex5", "clusters"
    (art / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(artifact.ArtifactError, match="only a quadrants model"):
        artifact.register(art, db_url, activate=True)
    model_id = artifact.register(art, db_url)
    with pytest.raises(artifact.ArtifactError, match="mirex5"):
        artifact.activate(model_id, db_url)
    assert artifact.active_model(db_url) is None
