"""The shipped song model (`--model default` = probe-ensemble): fit, artifact round trip, labelling inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from emotion import artifact
from emotion.data import LABELS, SongSample, collate
from emotion.models import DEFAULT_MODEL, ENSEMBLE_RECIPE, ProbeEnsemble, resolve
from emotion.models.ensemble import inner_folds, mix_weights, simplex
from emotion.train import TrainConfig, predict, train_model

QUAD = {"Q1": "happy", "Q2": "angry", "Q3": "sad", "Q4": "relaxed"}


def synthetic(n: int, seed: int = 0) -> list[SongSample]:
    """Songs whose first part (3-d) and second part (5-d) both carry the class a little (shape + sanity only)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y = i % 4
        x = rng.normal(size=(int(rng.integers(2, 6)), 8)).astype(np.float32)
        x[:, y % 3] += 1.5
        x[:, 3 + y] += 1.5
        out.append(SongSample(id=str(i), label=LABELS[y], audio=x, group=f"artist{i // 2}"))
    return out


def test_default_is_the_probe_ensemble_on_musicnn_and_whisper() -> None:
    assert resolve("default") == DEFAULT_MODEL == "probe-ensemble"
    assert ENSEMBLE_RECIPE["audio_encoder"] == "musicnn+whisper-tiny.en-l2+whisper-base-l2" and ENSEMBLE_RECIPE["segment_s"] == 3.0


def test_inner_folds_keep_artists_together_and_fall_back() -> None:
    y = np.array([0, 1] * 6)
    groups = np.array([f"a{i // 2}" for i in range(12)])
    for tr, va in inner_folds(y, groups, 0):
        assert not set(groups[tr]) & set(groups[va])
    assert len(inner_folds(y, np.array([str(i) for i in range(12)]), 0)) == 3  # no groups: plain stratified folds
    assert inner_folds(np.array([0, 1, 1]), np.array(["a", "b", "c"]), 0) == []  # one song of class 0: no folds


def test_fit_choose_save_load_same_probabilities(tmp_path: Path) -> None:
    train, val = synthetic(48), synthetic(16, seed=1)
    cfg = TrainConfig(model="probe-ensemble", model_params={"parts": [3, 5]}, standardize=False)
    result = train_model(train, val, cfg, progress=False)
    model = result.model
    assert isinstance(model, ProbeEnsemble) and model.parts == [3, 5]
    assert set(result.fit) >= {"c", "mix"} and sum(result.fit["mix"]) == pytest.approx(1.0)
    assert result.val_metrics["accuracy"] > 0.5
    probs = predict(model, val, result.dims)
    # the mixture is exactly the weighted average of the two probes (forward returns its log)
    parts = [p.numpy() for p in model.part_probs(collate(val, result.dims))]
    assert np.allclose(probs, result.fit["mix"][0] * parts[0] + result.fit["mix"][1] * parts[1], atol=1e-5)
    config = {**cfg.to_json(), "modalities": ["audio"], "encoders": {"audio": {"name": "x+y", "version": "1", "dim": 8}}}
    artifact.save(tmp_path / "m", model, config, result.standardizer, result.dims, {"val": result.val_metrics})
    loaded = artifact.load(tmp_path / "m")
    assert isinstance(loaded.model, ProbeEnsemble) and loaded.model.parts == [3, 5]
    assert np.allclose(loaded.predict(val), probs, atol=1e-6)


def test_mix_weights_on_the_simplex_grid() -> None:
    assert simplex(2) == [[i / 20, 1.0 - i / 20] for i in range(21)]  # the two-part grid: the first part's share
    grid = simplex(3)
    assert len(grid) == 231 and all(min(w) >= 0 and sum(w) == pytest.approx(1.0) for w in grid)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    good = np.full((200, 4), 0.1)
    good[np.arange(200), y] = 0.7  # right 70 %, the others spread
    noise = [rng.dirichlet(np.ones(4), 200) for _ in range(2)]
    mix, loss = mix_weights([noise[0], good, noise[1]], y)
    assert mix[1] >= 0.8 and loss < mix_weights([noise[0], noise[1]], y)[1]


def bimodal(n: int, seed: int = 0) -> list[SongSample]:
    """Audio (3 + 5 values) and lyrics (4 sentence values + 2 CNN values) that carry the class; every 4th song
    has no lyrics (shape + sanity only)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in synthetic(n, seed):
        lyr = rng.normal(size=(3, 6)).astype(np.float32)
        lyr[:, s.y] += 1.5
        out.append(SongSample(id=s.id, label=s.label, audio=s.audio, lyrics=None if int(s.id) % 4 == 3 else lyr, group=s.group))
    return out


def test_probe_fusion_mixes_audio_and_lyrics_probes_and_round_trips(tmp_path: Path) -> None:
    from emotion.models import ProbeFusion

    train, val = bimodal(64), bimodal(20, seed=1)
    cfg = TrainConfig(model="probe-fusion", model_params={"parts": [3, 5], "lyrics_dim": 4}, standardize=False)
    result = train_model(train, val, cfg, progress=False)
    model = result.model
    assert isinstance(model, ProbeFusion) and model.audio.parts == [3, 5] and model.lyrics.parts == [4]
    assert set(result.fit) == {"audio", "lyrics", "w_lyrics"} and 0.0 <= result.fit["w_lyrics"] <= 1.0
    assert result.val_metrics["accuracy"] > 0.5
    batch = collate(val, result.dims)
    pa, pl = model.audio(batch).exp().numpy(), model.lyrics(model.lyrics_view(batch)).exp().numpy()
    w = result.fit["w_lyrics"]
    expected = np.where(np.array([s.lyrics is not None for s in val])[:, None], (1 - w) * pa + w * pl, pa)
    probs = predict(model, val, result.dims)
    assert np.allclose(probs, expected, atol=1e-5)  # a song without lyrics gets the audio probes alone
    config = {**cfg.to_json(), "modalities": ["audio", "lyrics"],
              "encoders": {"audio": {"name": "x+y", "version": "1", "dim": 8}, "lyrics": {"name": "bert-cnn", "version": "1", "dim": 6}}}
    artifact.save(tmp_path / "m", model, config, result.standardizer, result.dims, {"val": result.val_metrics})
    assert np.allclose(artifact.load(tmp_path / "m").predict(val), probs, atol=1e-6)


def test_probe_fusion_on_lyrics_only_songs_is_the_lyrics_probe() -> None:
    lyrics_only = [SongSample(id=s.id, label=s.label, lyrics=s.lyrics, group=s.group) for s in bimodal(64) if s.lyrics is not None]
    cfg = TrainConfig(model="probe-fusion", model_params={"parts": [3, 5], "lyrics_dim": 4}, standardize=False)
    result = train_model(lyrics_only[:40], lyrics_only[40:], cfg, progress=False)  # e.g. NJU: no audio at all
    assert result.fit["w_lyrics"] == 1.0 and result.val_metrics["accuracy"] > 0.5


def test_probe_fusion_pools_lyrics_by_their_mean_and_old_artifacts_still_load(tmp_path: Path) -> None:
    """The registered probe-fusion's lyrics probe reads the mean of a song's sentence vectors (d values, not mean ++
    std), and pooled() and forward agree on it; an artifact written before `lyrics_pool` existed (mean ++ std, no
    such key in its model_params) loads with its own pooling and predicts as it did."""
    from emotion.models import ProbeFusion

    train, val = bimodal(64), bimodal(20, seed=1)
    cfg = TrainConfig(model="probe-fusion", model_params={"parts": [3, 5], "lyrics_dim": 4}, standardize=False)
    new = train_model(train, val, cfg, progress=False)
    assert isinstance(new.model, ProbeFusion) and new.model.lyrics.pool == "mean" and new.model.lyrics._buf("coef", 0).shape == (4, 4)
    lyr = new.model._lyrics_samples(val)
    assert np.allclose(new.model.lyrics.pooled(lyr)[0], np.stack([s.audio.mean(0) for s in lyr]), atol=1e-6)
    old_cfg = TrainConfig(model="probe-fusion", model_params={"parts": [3, 5], "lyrics_dim": 4, "lyrics_pool": "mean+std"}, standardize=False)
    old = train_model(train, val, old_cfg, progress=False)
    assert old.model.lyrics._buf("coef", 0).shape == (4, 8)
    config = {**old_cfg.to_json(), "modalities": ["audio", "lyrics"],
              "encoders": {"audio": {"name": "x+y", "version": "1", "dim": 8}, "lyrics": {"name": "bert-cnn", "version": "1", "dim": 6}}}
    del config["model_params"]["lyrics_pool"]  # as written before the option
    artifact.save(tmp_path / "old", old.model, config, old.standardizer, old.dims, {"val": old.val_metrics})
    loaded = artifact.load(tmp_path / "old")
    assert loaded.model.lyrics.pool == "mean+std"  # type: ignore[union-attr]  # a ProbeFusion
    assert np.allclose(loaded.predict(val), predict(old.model, val, old.dims), atol=1e-6)


def q4_manifest(shared: Path, out: Path, per_quadrant: int = 6) -> Path:
    """A small manifest of real q4 clips: per quadrant the first clips by name; 2 per quadrant are the val split,
    artists as groups."""
    root = shared / "q4-audio-dev"
    with (root / "panda_dataset_taffc_metadata.csv").open(encoding="latin-1", newline="") as fh:
        meta = {row["Song"]: row for row in csv.DictReader(fh)}
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "audio", "lyrics", "group", "split"])
        for quad, emotion in QUAD.items():
            for k, path in enumerate(sorted((root / quad).glob("*.opus"))[:per_quadrant]):
                w.writerow([path.stem, emotion, str(path), "", meta.get(path.stem, {}).get("Artist") or path.stem,
                            "val" if k < 2 else "train"])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_default_trains_on_real_q4_clips_round_trips_and_labels(shared_data: Path, tmp_path: Path, db_url: str) -> None:
    from cli.emotion_cmd import _config
    from emotion.inputs import build_samples
    from emotion.runs import evaluate_manifest, train_manifest

    manifest = q4_manifest(shared_data, tmp_path / "q4.csv")
    cfg = _config("default", None, None, None, None, None, None, None, [], [], None)
    assert (cfg.model, cfg.audio_encoder, cfg.segment_s, cfg.standardize) == ("probe-ensemble", "musicnn+whisper-tiny.en-l2+whisper-base-l2", 3.0, False)
    report = train_manifest(manifest, tmp_path / "model", cfg, progress=False, register=False)
    assert (report.n_train, report.n_val) == (16, 8) and not report.failures
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model_params"]["parts"] == [250, 768, 1024] and config["dims"]["audio"] == 2042
    enc = config["encoders"]["audio"]
    assert enc["name"] == "musicnn+whisper-tiny.en-l2+whisper-base-l2"
    assert "tiny.en.L2." in enc["version"] and "base.L2." in enc["version"]  # the Whisper weights' fingerprints
    assert sum(config["fit"]["mix"]) == pytest.approx(1.0)

    art = artifact.load(tmp_path / "model")
    spec = art.input_spec()  # what the labeller and the workers extract for new songs
    assert (spec.audio_encoder, spec.segment_s, spec.lyrics_encoder) == ("musicnn+whisper-tiny.en-l2+whisper-base-l2", 3.0, "")
    from catalog.manifest import read

    items = read(manifest).items
    samples = build_samples(items, spec, progress=False).samples
    probs = art.predict(samples)
    assert probs.shape == (24, 4) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    evaluation = evaluate_manifest(tmp_path / "model", manifest, progress=False)
    assert np.allclose([p["probabilities"] for p in evaluation.predictions], probs, atol=1e-6)
    assert evaluation.metrics["n"] == 24 and evaluation.metrics["model"] == "probe-ensemble"

    # activated, it labels catalog songs (emotion.label) and drives the workers' labeller with the same inputs
    from catalog.db import session_scope
    from catalog.models import AudioAsset, EmotionLabel, Song
    from catalog.store import FileStore
    from emotion.label import label_songs
    from workers.stages import ActiveModelLabeller

    artifact.register(tmp_path / "model", db_url, activate=True)
    clips = [it for it in items if it.split == "val"][:2]
    with session_scope(db_url) as s:
        ids = []
        for it in clips:
            assert it.audio is not None
            data = it.audio.read_bytes()
            song = Song(title=it.id, fingerprint=it.id.ljust(64, "0")[:64], status="new")
            s.add(song)
            s.flush()
            digest, dest = FileStore().put_bytes("audio", data, ".opus")
            s.add(AudioAsset(song_id=song.id, sha256=digest, path=FileStore().relative(dest), format="opus", sample_rate=48000,
                             channels=2, duration_s=30.0, size_bytes=len(data)))
            ids.append(song.id)
    report = label_songs("new", url=db_url, progress=False)
    assert (report.labelled, report.failed) == (2, 0)
    expected = {sid: probs[[it.id for it in items].index(it.id)] for sid, it in zip(ids, clips, strict=True)}
    with session_scope(db_url) as s:
        for row in s.scalars(select(EmotionLabel)):
            assert np.allclose([row.probabilities[k] for k in LABELS], expected[row.song_id], atol=1e-5)
    labeller = ActiveModelLabeller()
    assert labeller.spec.audio_encoder == "musicnn+whisper-tiny.en-l2+whisper-base-l2"
    predicted = labeller.predict(ids)
    for sid in ids:
        p = predicted[sid]
        assert not isinstance(p, str)
        assert np.allclose([p.probabilities[k] for k in LABELS], expected[sid], atol=1e-5)


@pytest.mark.slow
def test_default_trains_on_real_lyrics_only_songs(shared_data: Path, tmp_path: Path) -> None:
    """`--model default` on a lyrics-only manifest (real NJU lyrics, no audio) trains the fusion's lyrics probe on
    the mean of each song's MiniLM + MPNet sentence vectors (it used to pick the audio-only ensemble and fail), and
    the artifact scores the manifest."""
    from catalog.importers.nju import import_nju
    from catalog.manifest import read
    from cli.emotion_cmd import _config
    from emotion.runs import evaluate_manifest, train_manifest

    full = tmp_path / "nju.csv"
    import_nju(shared_data / "nju-musicmood-train", full)
    rows = list(csv.DictReader(full.open(encoding="utf-8")))
    kept = [r for label in QUAD.values() for r in [r for r in rows if r["label"] == label][:6]]  # 6 a class: MPNet encodes them on the CPU
    manifest = tmp_path / "nju-small.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "lyrics": str((full.parent / r["lyrics"]).resolve())} for r in kept)
    assert all(it.audio is None and it.lyrics is not None for it in read(manifest).items)
    cfg = _config("default", None, None, None, None, None, None, None, [], [], None, manifest)
    assert (cfg.model, cfg.lyrics_encoder, cfg.lyrics_cnn_epochs) == ("probe-fusion", "minilm+mpnet", 0)
    report = train_manifest(manifest, tmp_path / "model", cfg, progress=False, register=False)
    assert report.n_train + report.n_val == 24 and not report.failures
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["fit"]["w_lyrics"] == 1.0 and config["model_params"]["lyrics_pool"] == "mean" and config["modalities"] == ["lyrics"]
    assert config["model_params"]["lyrics_dim"] == 384 + 768  # the probe reads both sentence vectors
    # time-tagged lyrics are cut into 10 s windows, not the audio's 3 s segments, and the artifact cuts them the same way
    from emotion.artifact import load
    from emotion.features.cleaning import prepare_lyrics
    from emotion.features.segments import SegmentSpec, lyric_segments
    from emotion.inputs import build_samples

    spec = load(tmp_path / "model").input_spec()
    assert (config["segment_s"], config["lyrics_segment_s"]) == (3.0, 0.0) and spec.lyrics_segments() == SegmentSpec()
    item = read(manifest).items[0]
    lines = prepare_lyrics(Path(str(item.lyrics)).read_bytes()).lines
    built = build_samples([item], spec, progress=False).samples[0]
    assert built.lyrics is not None
    assert len(built.lyrics) == len(lyric_segments(lines, spec=SegmentSpec())) < len(lyric_segments(lines, spec=spec.segments()))
    evaluation = evaluate_manifest(tmp_path / "model", manifest, progress=False)
    assert evaluation.metrics["n"] == 24 and evaluation.metrics["accuracy"] > 0.25  # its own training songs
