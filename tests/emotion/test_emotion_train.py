"""The training loop: seeded determinism, best checkpoint by validation macro-F1, artifacts that load back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from catalog.manifest import Item, Manifest
from emotion import artifact
from emotion.data import LABELS, SongSample, Standardizer
from emotion.evaluate import scores
from emotion.runs import train_val_items
from emotion.train import TrainConfig, train_model


def tiny_set(seed: int, n: int = 24) -> list[SongSample]:
    """Synthetic segment matrices whose mean encodes the label (shape/determinism checks only)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y = i % 4
        shift = np.eye(4)[y].repeat(2)
        out.append(SongSample(
            id=f"s{i}", label=LABELS[y], group=f"g{i // 2}",
            audio=(rng.normal(size=(3, 8)) + shift).astype(np.float32) if i % 3 else None,
            lyrics=(rng.normal(size=(4, 6)) + shift[:6]).astype(np.float32),
        ))
    return out


CFG = TrainConfig(model="songgatnet", epochs=3, batch_size=4, lr=1e-3, threads=1)


def state(result) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def test_same_seed_same_weights_and_history() -> None:
    train, val = tiny_set(0), tiny_set(1, 8)
    a, b = train_model(train, val, CFG, progress=False), train_model(train, val, CFG, progress=False)
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.history == b.history
    c = train_model(train, val, replace(CFG, seed=7), progress=False)
    assert not all(torch.equal(sa[k], state(c)[k]) for k in sa)


def test_best_epoch_is_the_best_validation_macro_f1() -> None:
    result = train_model(tiny_set(0), tiny_set(1, 8), replace(CFG, model="concat-mlp", epochs=4), progress=False)
    f1s = [h["val_macro_f1"] for h in result.history]
    assert result.best_epoch == int(np.argmax(f1s)) + 1
    assert result.val_metrics["macro_f1"] == pytest.approx(max(f1s))
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]


def test_artifact_round_trip_gives_the_same_predictions(tmp_path: Path) -> None:
    train, val = tiny_set(0), tiny_set(1, 8)
    result = train_model(train, val, replace(CFG, model="joint-mtl"), progress=False)
    config = {**replace(CFG, model="joint-mtl").to_json(), "encoders": {}, "modalities": ["audio", "lyrics"]}
    artifact.save(tmp_path / "a", result.model, config, result.standardizer, result.dims, {"val": result.val_metrics}, result.history)
    loaded = artifact.load(tmp_path / "a")
    from emotion.train import predict

    direct = predict(result.model, [result.standardizer.apply(s) for s in val], result.dims)
    assert np.allclose(loaded.predict(val), direct, atol=1e-6)
    assert (tmp_path / "a" / "labels.json").read_text().count(":") == 4
    (tmp_path / "a" / artifact.WEIGHTS).unlink()
    with pytest.raises(artifact.ArtifactError, match="not a model artifact"):
        artifact.load(tmp_path / "a")


def test_standardizer_uses_training_statistics_only() -> None:
    s = tiny_set(0)
    std = Standardizer.fit(s)
    z = np.concatenate([std.apply(x).lyrics for x in s])
    assert np.allclose(z.mean(0), 0, atol=1e-5) and np.allclose(z.std(0), 1, atol=1e-4)
    back = Standardizer.from_json(std.to_json())
    assert np.allclose(back.apply(s[0]).lyrics, std.apply(s[0]).lyrics)


def test_group_aware_validation_split_when_the_manifest_has_none() -> None:
    items = [Item(id=f"i{k}", label=LABELS[k % 4], audio=None, lyrics=None, group=f"g{k // 3}") for k in range(60)]
    train, val, how = train_val_items(Manifest(Path("m.csv"), items), 0.2, 42)
    assert how == "group-aware" and val and train
    assert not {i.group for i in train} & {i.group for i in val}
    items[0].split = "test"
    train, val, _ = train_val_items(Manifest(Path("m.csv"), items), 0.2, 42)
    assert "i0" not in {i.id for i in train + val}


def test_scores_contract() -> None:
    y = np.array([0, 1, 2, 3, 0])
    p = np.eye(4)[[0, 1, 2, 0, 0]]
    m = scores(y, p)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(0.8)
    assert m["confusion"][3] == [1, 0, 0, 0]
    assert m["per_class_f1"]["relaxed"] == 0.0 and m["per_class_f1"]["angry"] == 1.0
    assert set(m) >= {"accuracy", "macro_f1", "per_class_f1", "confusion", "labels", "n", "auc_ovr", "macro_precision", "macro_recall"}


def test_mirex5_label_set_trains_five_classes_and_round_trips(tmp_path: Path) -> None:
    from catalog.manifest import LABEL_SETS

    clusters = LABEL_SETS["mirex5"]
    train, val = tiny_set(0, 30), tiny_set(1, 10)
    for i, s in enumerate(train + val):
        s.label = clusters[i % 5]
    cfg = replace(CFG, model="concat-mlp", label_set="mirex5")
    result = train_model(train, val, cfg, progress=False)
    assert result.val_metrics["labels"] == list(clusters) and len(result.val_metrics["confusion"]) == 5
    config = {**cfg.to_json(), "modalities": ["audio", "lyrics"], "encoders": {}, "label_set": "mirex5"}
    artifact.save(tmp_path / "m", result.model, config, result.standardizer, result.dims, {"val": result.val_metrics})
    art = artifact.load(tmp_path / "m")
    assert art.labels == clusters and art.predict(val).shape == (10, 5)
    with pytest.raises(ValueError, match="not in the label set quadrants"):
        train_model(train, val, CFG, progress=False)


def test_without_validation_rows_nothing_is_reported_as_val() -> None:
    """No val rows: no checkpoint is picked on the training songs; the last epoch is kept and no 'val' score exists."""
    result = train_model(tiny_set(0), [], replace(CFG, model="concat-mlp", epochs=3), progress=False)
    assert result.val_metrics == {} and result.best_epoch == 3
    assert all("val_macro_f1" not in h for h in result.history)
