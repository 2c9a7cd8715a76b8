"""Topic subclasses on a real catalog: EMOPIA excerpts rendered from the shared MIDI, labelled by quadrant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import Song, SongTopic, Topic, TopicModel
from catalog.store import FileStore
from tests.support.topics_catalog import Clip, add_song, build_catalog, render_clips
from topics.build import BuildConfig, build_all, build_emotion
from topics.errors import TopicsError
from topics.frames import SongFrames
from topics.infer import infer_frames, infer_song, stored_topics
from topics.playlist import list_topics, playlist

pytestmark = pytest.mark.slow  # renders 24 EMOPIA excerpts once per session (~20-50 s) and analyses them

SMALL = dict(k=16, num_topics=3, seed=42, progress=False)


@pytest.fixture(scope="session")
def clips(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """24 real EMOPIA excerpts (6 songs per quadrant), rendered once per session."""
    return render_clips(shared_data / "emopia-dev", tmp_path_factory.mktemp("emopia"))


@pytest.fixture(scope="session")
def frame_cache() -> dict:
    """LLD frames shared across tests (keyed by audio hash), so each clip is analysed once."""
    return {}


@pytest.fixture()
def catalog(db_url: str, clips: list[Clip]) -> dict[str, list[int]]:
    return build_catalog(db_url, clips)


@pytest.fixture()
def frames_for(frame_cache: dict) -> SongFrames:
    return SongFrames(cache=frame_cache)


def _stored(url: str, model_id: int) -> dict[int, dict[int, tuple[float, bool]]]:
    with session_scope(url) as s:
        rows = s.execute(select(SongTopic.song_id, Topic.index, SongTopic.weight, SongTopic.dominant).join(Topic).where(Topic.topic_model_id == model_id)).all()
    out: dict[int, dict[int, tuple[float, bool]]] = {}
    for song, index, weight, dominant in rows:
        out.setdefault(song, {})[index] = (weight, dominant)
    return out


def test_build_gives_nonempty_topics_and_distributions_summing_to_one(db_url, catalog, frames_for) -> None:
    report = build_emotion("happy", BuildConfig(**SMALL), frames_for=frames_for)
    assert report.version == 1 and report.songs == len(catalog["happy"]) and report.skipped == []
    assert len(report.sizes) == report.params["topics_used"] >= 2
    stored = _stored(db_url, report.model_id)
    assert set(stored) == set(catalog["happy"])
    for topics in stored.values():
        weights = np.array([topics[t][0] for t in sorted(topics)])
        assert len(weights) == len(report.sizes)
        assert weights.sum() == pytest.approx(1.0, abs=1e-9)
        assert (weights >= 0).all()
        dominant = [t for t in topics if topics[t][1]]
        assert dominant == [int(np.argmax(weights))]
    with session_scope(db_url) as s:
        tm = s.scalars(select(TopicModel).where(TopicModel.id == report.model_id)).one()
        assert tm.active and tm.emotion == "happy" and tm.params["k_used"] == 16
        sizes = [t.size for t in tm.topics]
        assert all(n > 0 for n in sizes) and sum(sizes) == len(catalog["happy"])
        assert all(t.description["label"] and len(t.description["top_words"]) == 5 for t in tm.topics)
        assert all(t.description["artists"] and t.description["artists"][0][1] >= 1 for t in tm.topics)
        assert all(t.description["lyric_words"] == [] for t in tm.topics)  # EMOPIA has no lyrics
        assert set(tm.topics[0].description["audio"]) == {"tempo", "brightness", "loudness", "pitch range"}
        values = tm.topics[0].description["values"]
        assert set(values) <= {"tempo_bpm", "brightness_db", "loudness_db", "pitch_range_hz"} and "loudness_db" in values
        assert all(40 <= t.description["values"].get("tempo_bpm", 60) <= 240 for t in tm.topics)
        for t in tm.topics:  # told apart from the emotion's median song, with songs to listen to
            d = t.description
            assert set(d["measures"]) == {"tempo_bpm", "loudness_db", "brightness_db", "pitch_range_hz", "energy"}
            assert all(m["diff"] == pytest.approx(m["topic"] - m["median"], abs=0.2) for m in d["measures"].values())
            assert 1 <= len(d["songs"]) <= 3 and {x["id"] for x in d["songs"]} <= set(catalog["happy"])
            assert "listen to \u201c" in d["label"] and "typical of the emotion" not in d["label"]
        assert FileStore().resolve(tm.artifact_path).is_file()
        statuses = set(s.scalars(select(Song.status).where(Song.id.in_(catalog["happy"]))).all())
        assert statuses == {"topics"}
        others = set(s.scalars(select(Song.status).where(Song.id.in_(catalog["sad"]))).all())
        assert others == {"labelled"}


def test_inference_on_a_song_in_the_model_returns_its_stored_topics(db_url, catalog, frames_for) -> None:
    build_emotion("sad", BuildConfig(**SMALL), frames_for=frames_for)
    for song_id in catalog["sad"]:
        inferred = infer_song(song_id, frames_for=frames_for)
        stored = stored_topics(song_id, "sad")
        assert inferred.emotion == "sad" and stored is not None
        np.testing.assert_allclose(inferred.weights, stored.weights, rtol=0, atol=1e-9)
    # The same through raw frames (the path a new song or a clip takes).
    with session_scope(db_url) as s:
        song = s.get(Song, catalog["sad"][0])
        _ = song.audio
    again = infer_frames("sad", frames_for(song))
    np.testing.assert_allclose(again.weights, stored_topics(song.id, "sad").weights, atol=1e-9)


def test_refit_with_same_seed_is_reproducible_and_versions_the_model(db_url, catalog, frames_for) -> None:
    first = build_emotion("angry", BuildConfig(**SMALL), frames_for=frames_for)
    second = build_emotion("angry", BuildConfig(**SMALL), frames_for=frames_for)
    assert (first.version, second.version) == (1, 2)
    a, b = _stored(db_url, first.model_id), _stored(db_url, second.model_id)
    assert a == b
    assert second.metrics["movement"]["moved_fraction"] == 0.0
    assert second.metrics["movement"]["common_songs"] == len(catalog["angry"])
    assert first.metrics["movement"]["moved_fraction"] is None
    with session_scope(db_url) as s:
        active = s.scalars(select(TopicModel.version).where(TopicModel.emotion == "angry", TopicModel.active.is_(True))).all()
        assert active == [2]
    third = build_emotion("angry", BuildConfig(**{**SMALL, "seed": 7, "num_topics": 2}), frames_for=frames_for)
    moved = third.metrics["movement"]
    assert third.version == 3 and 0.0 <= moved["moved_fraction"] <= 1.0 and len(moved["alignment"]) == 2


def test_new_song_gets_topics_without_refit_and_joins_a_playlist(db_url, catalog, clips, frames_for, tmp_path) -> None:
    build_emotion("relaxed", BuildConfig(**SMALL), frames_for=frames_for)
    with session_scope(db_url) as s:
        models_before = s.scalar(select(func.count()).select_from(TopicModel))
        model_id = s.scalar(select(TopicModel.params).where(TopicModel.emotion == "relaxed"))["emotion_model_id"]
        # the first relaxed clip re-encoded as WAV: new file, same samples, so its topics must match that song's
        y, sr = sf.read(str(next(c.path for c in clips if c.emotion == "relaxed")), dtype="int16")
        wav = tmp_path / "again.wav"
        sf.write(str(wav), y, sr, subtype="PCM_16")
        new = add_song(s, FileStore(), wav, "relaxed again", "relaxed", model_id, confidence=0.99)
        new_id = new.id
    result = infer_song(new_id, frames_for=frames_for, save=True)
    twin = stored_topics(catalog["relaxed"][0], "relaxed")
    np.testing.assert_allclose(result.weights, twin.weights, atol=1e-9)
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(TopicModel)) == models_before
        assert s.get(Song, new_id).status == "topics"
    entries = playlist("relaxed", result.dominant)
    assert new_id in [e.song_id for e in entries]
    assert sum(t.size for t in list_topics("relaxed")) == len(catalog["relaxed"]) + 1


def test_playlist_is_ordered_by_weight_and_confidence(db_url, catalog, frames_for) -> None:
    report = build_emotion("happy", BuildConfig(**SMALL), frames_for=frames_for)
    topics = list_topics("happy")
    assert [t.index for t in topics] == list(range(len(report.sizes)))
    seen = []
    for t in topics:
        entries = playlist("happy", t.index)
        assert len(entries) == t.size > 0
        scores = [e.score for e in entries]
        assert scores == sorted(scores, reverse=True)
        assert all(0 < e.confidence <= 1 and e.artist for e in entries)
        seen += [e.song_id for e in entries]
    assert sorted(seen) == sorted(catalog["happy"])
    assert len(playlist("happy", 0, limit=1)) == 1
    with pytest.raises(TopicsError, match="not 99"):
        playlist("happy", 99)


def test_fewer_frames_than_k_reduces_the_codebook(db_url, catalog, frames_for) -> None:
    report = build_emotion("sad", BuildConfig(k=150, num_topics=5, progress=False), frames_for=frames_for)
    frames = report.metrics["frames"]
    assert frames < 150
    assert report.params["k_requested" if "k_requested" in report.params else "k"] == 150
    assert 2 <= report.params["k_used"] < 150
    assert any("K reduced from 150" in n for n in report.metrics["notes"])
    assert all(n > 0 for n in report.sizes)


def test_song_without_usable_frames_is_recorded_and_skipped(db_url, catalog, frames_for, tmp_path) -> None:
    silent = tmp_path / "silent.flac"
    sf.write(str(silent), np.zeros(16000 * 5, dtype=np.float32), 16000, format="FLAC")
    with session_scope(db_url) as s:
        model_id = s.scalar(select(TopicModel.id).limit(1))  # none yet
        assert model_id is None
        from catalog.models import EmotionModel

        emodel = s.scalar(select(EmotionModel.id))
        bad = add_song(s, FileStore(), silent, "silence", "happy", emodel).id
    report = build_emotion("happy", BuildConfig(**SMALL), frames_for=frames_for)
    assert report.songs == len(catalog["happy"])
    assert [item["song_id"] for item in report.skipped] == [bad]
    assert "silent" in report.skipped[0]["reason"]
    with session_scope(db_url) as s:
        song = s.get(Song, bad)
        assert (song.status, song.failed_stage) == ("failed", "topics") and "silent" in song.failure_reason
        tm = s.get(TopicModel, report.model_id)
        assert tm.metrics["skipped"][0]["song_id"] == bad
    with pytest.raises(TopicsError):
        infer_song(bad, frames_for=frames_for)


def test_degenerate_catalogs_give_clear_errors(db_url, catalog, frames_for) -> None:
    with pytest.raises(TopicsError, match="unknown emotion"):
        build_emotion("bored", BuildConfig(**SMALL), frames_for=frames_for)
    with pytest.raises(TopicsError, match="unknown topic selection 'vibes'"):
        build_emotion("happy", BuildConfig(**{**SMALL, "select": "vibes"}), frames_for=frames_for)
    with session_scope(db_url) as s:
        from catalog.models import EmotionLabel

        for song_id in catalog["angry"][1:]:
            s.query(EmotionLabel).filter(EmotionLabel.song_id == song_id).delete()
    with pytest.raises(TopicsError, match="angry: 1 songs with usable frames; need at least 2"):
        build_emotion("angry", BuildConfig(**SMALL), frames_for=frames_for)
    reports, errors = build_all(["angry", "happy"], BuildConfig(**SMALL), frames_for=frames_for)
    assert [r.emotion for r in reports] == ["happy"] and "need at least 2" in errors["angry"]
    with pytest.raises(TopicsError, match="no active topic model"):
        list_topics("sad")
    with pytest.raises(TopicsError, match="dimensions"):
        infer_frames("happy", np.ones((3, 10), dtype=np.float32))
    with session_scope(db_url) as s:
        from catalog.models import EmotionModel

        s.query(EmotionModel).update({"active": False})
    with pytest.raises(TopicsError, match="no active song emotion model"):
        build_emotion("happy", BuildConfig(**SMALL), frames_for=frames_for)


def test_number_of_topics_picked_by_coherence_and_perplexity(db_url, catalog, frames_for) -> None:
    for method in ("coherence", "perplexity"):
        report = build_emotion("happy", BuildConfig(**{**SMALL, "select": method, "candidates": [2, 3]}), frames_for=frames_for)
        assert set(report.metrics["selection"]) == {"2", "3"}
        assert report.params["topics_used"] <= int(max(report.metrics["selection"], key=int))
        assert all(np.isfinite(v) for v in report.metrics["selection"].values())


def test_cli_build_show_playlist(db_url, catalog, frames_for, tmp_path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    # the CLI reads frames from the catalog's feature cache (as after the worker's features stage)
    with session_scope(db_url) as s:
        songs = s.scalars(select(Song).where(Song.id.in_(catalog["happy"] + catalog["sad"]))).all()
        for song in songs:
            _ = song.audio
    for song in songs:
        frames_for.persist_frames(song, frames_for(song))
    runner = CliRunner()
    result = runner.invoke(app, ["topics", "build", "--emotion", "happy", "--emotion", "sad", "--k", "16", "--topics", "3"])
    assert result.exit_code == 0, result.output
    assert "happy: v1" in result.output and "sad: v1" in result.output and "first version" in result.output
    result = runner.invoke(app, ["topics", "build", "--emotion", "happy", "--k", "16", "--topics", "3"])
    assert result.exit_code == 0 and "0.0% of 6 songs changed dominant topic vs v1" in result.output
    out = tmp_path / "plots"
    result = runner.invoke(app, ["topics", "show", "happy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "topic 0:" in result.output and "top audio words" in result.output
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["happy-v2-song-map.png", "happy-v2-songs-per-topic.png", "happy-v2-topic-words.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    result = runner.invoke(app, ["topics", "playlist", "happy", "0"])
    assert result.exit_code == 0 and "  1. [" in result.output
    result = runner.invoke(app, ["topics", "show", "angry"])
    assert result.exit_code == 1 and "no active topic model" in result.output
    result = runner.invoke(app, ["topics", "show", "--out", str(out)])  # no emotion named: every emotion with topics
    assert result.exit_code == 0, result.output
    assert result.output.index("== happy ==") < result.output.index("== sad ==") and "== angry ==" not in result.output
    assert (out / "sad-v1-song-map.png").is_file()
    result = runner.invoke(app, ["topics", "playlist", "happy", "42"])
    assert result.exit_code == 1


def test_topic_descriptions_carry_distinctive_lyric_words(db_url, catalog, frames_for, shared_data) -> None:
    from catalog.fingerprint import sha256_text
    from catalog.lyrics import decode_text, has_time_tags, parse_lrc, plain_text
    from catalog.models import Lyrics

    # EMOPIA has no lyrics: pair the happy clips with real NJU-MusicMood Happy lyrics to exercise the path
    files = sorted(f for f in (shared_data / "nju-musicmood-train" / "Happy").glob("*.txt") if f.name != "info.txt")
    texts = {}
    with session_scope(db_url) as s:
        for song_id, f in zip(catalog["happy"], files, strict=False):
            raw = decode_text(f.read_bytes())
            lines = parse_lrc(raw)
            line_rows = [{"time_s": ln.time_s, "text": ln.text} for ln in lines]
            s.add(Lyrics(song_id=song_id, raw_text=raw, lines=line_rows, has_time_tags=has_time_tags(lines), sha256=sha256_text(raw)))
            texts[song_id] = plain_text(lines).lower()
    report = build_emotion("happy", BuildConfig(**SMALL), frames_for=frames_for)
    for t in list_topics("happy"):
        words = t.description["lyric_words"]
        members = " ".join(texts[e.song_id] for e in playlist("happy", t.index))
        assert words and all(w in members for w in words)
    assert report.songs == len(catalog["happy"])


def test_show_without_any_topic_model_says_build_first(db_url: str) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["topics", "show"])
    assert result.exit_code == 1 and "run `musicrec topics build` first" in result.output
