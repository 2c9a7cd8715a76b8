"""Train and score every model on the same split of one manifest; Markdown + JSON table and a PNG chart."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from catalog.manifest import Item, Manifest, assign_splits, read
from emotion import artifact
from emotion.data import LABELS, SongSample
from emotion.evaluate import scores
from emotion.inputs import InputSpec, build_samples
from emotion.models import RECIPE_TRAINING_KEYS, REGISTRY
from emotion.models import spec as model_spec
from emotion.runs import RunError, manifest_label_set, train_lyrics_branch, train_val_items, trained_modalities, with_parts
from emotion.train import TrainConfig, plot_curves, predict, train_model

log = logging.getLogger(__name__)
ORDER: tuple[str, ...] = tuple(REGISTRY)


def split_items(items: list[Item], val: float, test: float, seed: int) -> tuple[list[Item], list[Item], list[Item], str]:
    """The manifest's own train/val/test when it has a test split, else a group-aware one."""
    if any(it.split == "test" for it in items):
        from catalog.manifest import Manifest

        m = Manifest(Path("."), items)
        train, val_items, _ = train_val_items(m, val, seed)
        return train, val_items, [it for it in items if it.split == "test"], "manifest"
    groups = assign_splits(items, val=val, test=test, seed=seed)

    def pick(name: str) -> list[Item]:
        return [it for it in items if groups[it.group] == name]

    return pick("train"), pick("val"), pick("test"), "group-aware"


def applicable(name: str, samples: list[SongSample]) -> str | None:
    """None when the model can read the data, else why not (e.g. an audio model on a lyrics-only set)."""
    cls = model_spec(name).cls
    has = {"audio": any(s.audio is not None for s in samples), "lyrics": any(s.lyrics is not None for s in samples)}
    if not any(has[m] for m in cls.uses):
        return f"needs {' or '.join(sorted(cls.uses))}, which this data set lacks"
    if model_spec(name).params.get("graph") == "no-cross" and not any(s.audio is not None and s.lyrics is not None for s in samples):
        return "same graphs as songgatnet here: no song has both modalities, so there is no cross-modal edge to remove"
    return None


def train_and_score(
    name: str, base: TrainConfig, tr: list[SongSample], va: list[SongSample], te: list[SongSample], out: Path | None, context: dict[str, Any],
    progress: bool, override: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train one model with the shared settings, score it on the test songs, optionally keep its artifact.
    `override`: {"model_params": {..}, training keys (RECIPE_TRAINING_KEYS)} on top of the model's own recipe."""
    own = {k: v for k, v in model_spec(name).recipe.items() if k in RECIPE_TRAINING_KEYS}  # e.g. lstm-attention's own recipe
    override = dict(override or {})
    params = with_parts(name, {**(base.model_params if name == base.model else {}), **override.pop("model_params", {})}, base.audio_encoder,
                        base.lyrics_encoder)
    if set(override) - RECIPE_TRAINING_KEYS:
        raise RunError(f"{name}: not a training setting a recipe may set: {sorted(set(override) - RECIPE_TRAINING_KEYS)}")
    cfg = replace(base, model=name, model_params=params, **{**own, **override})
    if base.threads:
        import torch

        torch.set_num_threads(base.threads)
    t0 = time.perf_counter()
    result = train_model(tr, va, cfg, progress)
    seconds = time.perf_counter() - t0
    probs = predict(result.model, [result.standardizer.apply(s) for s in te], result.dims, "cpu", cfg.eval_batch_size)
    m = scores(np.array([s.y for s in te]), probs, cfg.labels)
    m.update(best_epoch=result.best_epoch, train_seconds=round(seconds, 1), val_macro_f1=result.val_metrics.get("macro_f1"),
             params=sum(p.numel() for p in result.model.parameters()), **({"fit": result.fit} if result.fit else {}))
    log.info("%s: acc %.3f macro-F1 %.3f (%.0f s)", name, m["accuracy"], m["macro_f1"], seconds)
    if out is not None:
        folder = out / "models" / name
        config = {**cfg.to_json(), **context, "best_epoch": result.best_epoch}
        artifact.save(folder, result.model, config, result.standardizer, result.dims, {"val": result.val_metrics, "test": m}, result.history)
        plot_curves(result.history, folder / artifact.CURVES, name)
    return m


def learns_lyrics(models: list[str]) -> bool:
    """Whether any of `models` reads lyrics, so that a benchmark of them trains the lyrics branch (bert-cnn's CNN) first."""
    return any(model_spec(m).cls.uses & {"lyrics"} for m in models)


def run_benchmark(
    manifest_path: str | Path,
    models: list[str],
    out: str | Path,
    base: TrainConfig,
    val: float = 0.15,
    test: float = 0.2,
    progress: bool = True,
    keep_artifacts: bool = True,
    jobs: int = 1,
    overrides: dict[str, dict[str, Any]] | None = None,
    lyrics_cnn: Path | None = None,
) -> dict[str, Any]:
    """Train each model with `base` settings on one split and score it on the test rows (`overrides`: per model name,
    see `train_and_score`; `lyrics_cnn`: bert-cnn CNN weights already trained on this split's training lyrics, e.g. by
    an earlier run with the same manifest and seed, instead of training them again)."""
    manifest = read(manifest_path)
    base = replace(base, label_set=manifest_label_set(manifest))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_items, val_items, test_items, how = split_items(manifest.items, val, test, base.seed)
    if not train_items or not test_items:
        raise RunError(f"{manifest.path}: need train and test rows (got {len(train_items)} / {len(test_items)})")
    needs = frozenset().union(*(model_spec(m).cls.needs for m in models))
    spec = InputSpec(base.audio_encoder, base.lyrics_encoder, needs, base.workers, base.segment_s, lyrics_segment_s=base.lyrics_segment_s)
    if lyrics_cnn is not None:  # a CNN trained on this very split before (same manifest and seed)
        spec = replace(spec, lyrics_cnn=str(lyrics_cnn))
    elif learns_lyrics(models):  # the lyrics branch learns on the training lyrics
        trained_cnn = train_lyrics_branch(spec, train_items, val_items, base, out, progress)
        if trained_cnn is not None:
            spec = replace(spec, lyrics_cnn=str(trained_cnn.path))
    built = {
        name: build_samples(items, spec, progress, f"features {name}") for name, items in (("train", train_items), ("val", val_items), ("test", test_items))
    }
    failures = [str(f) for b in built.values() for f in b.failures]
    tr, va, te = built["train"].samples, built["val"].samples, built["test"].samples
    rows: dict[str, Any] = {name: {"skipped": why} for name in models if (why := applicable(name, tr + va))}

    def slow_first(n: str) -> int:
        return 0 if n == "cnn-lstm" else 1 if model_spec(n).cls.__name__ == "SongGATNet" else 2

    todo = sorted((name for name in models if name not in rows), key=slow_first) if jobs > 1 else [n for n in models if n not in rows]
    context = {"manifest": str(manifest.path), "manifest_sha256": manifest.digest(), "val_split": how,
               "modalities": trained_modalities(tr + va), "encoders": spec.encoder_ids()}
    args = [(name, base, tr, va, te, out if keep_artifacts else None, context, progress and jobs <= 1, (overrides or {}).get(name))
            for name in todo]
    if jobs <= 1:
        for a in args:
            rows[a[0]] = train_and_score(*a)
            _write(out, manifest, how, len(tr), len(va), len(te), base, spec, rows, failures)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(train_and_score, *a): a[0] for a in args}
            for fut in as_completed(futures):
                rows[futures[fut]] = fut.result()
                _write(out, manifest, how, len(tr), len(va), len(te), base, spec, rows, failures)
    rows = {name: rows[name] for name in models}
    return _write(out, manifest, how, len(tr), len(va), len(te), base, spec, rows, failures)


def _write(
    out: Path, manifest: Manifest, how: str, n_tr: int, n_va: int, n_te: int, base: TrainConfig, spec: InputSpec, rows: dict[str, Any], failures: list[str]
) -> dict[str, Any]:
    result = {
        "manifest": str(manifest.path),
        "manifest_sha256": manifest.digest(),
        "split": how,
        "n_train": n_tr, "n_val": n_va, "n_test": n_te,
        "epochs": base.epochs, "seed": base.seed, "label_set": base.label_set, "labels": list(base.labels),
        "encoders": {"audio": spec.audio_encoder, "lyrics": spec.lyrics_encoder},
        "failures": failures,
        "models": rows,
    }
    (out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "benchmark.md").write_text(markdown(result), encoding="utf-8")
    chart(result, out / "benchmark.png")
    return result


def markdown(result: dict[str, Any]) -> str:
    """Table like SongGATNet's Tables 1-2: a column per model, per-class F1, accuracy, macro-F1."""
    done = [(n, m) for n, m in result["models"].items() if "skipped" not in m]
    lines = [
        f"Manifest `{Path(result['manifest']).name}` ({result['split']} split: {result['n_train']} train / {result['n_val']} val / {result['n_test']} test), "
        f"{result['epochs']} epochs, seed {result['seed']}, encoders audio={result['encoders']['audio']} lyrics={result['encoders']['lyrics']}.",
        "",
        "| | " + " | ".join(n for n, _ in done) + " |",
        "|---|" + "---|" * len(done),
    ]
    for label in result.get("labels", LABELS):
        lines.append(f"| {label} F1 | " + " | ".join(f"{m['per_class_f1'][label]:.2f}" for _, m in done) + " |")
    lines.append("| accuracy | " + " | ".join(f"{m['accuracy']:.2f}" for _, m in done) + " |")
    lines.append("| macro-F1 | " + " | ".join(f"{m['macro_f1']:.2f}" for _, m in done) + " |")
    lines.append("| best epoch | " + " | ".join(str(m["best_epoch"]) for _, m in done) + " |")
    skipped = [(n, m["skipped"]) for n, m in result["models"].items() if "skipped" in m]
    if skipped:
        lines += ["", "Not applicable: " + "; ".join(f"{n} ({why})" for n, why in skipped) + "."]
    if result["failures"]:
        lines += ["", f"{len(result['failures'])} song(s) could not be read: " + "; ".join(result["failures"][:5])]
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], path: Path) -> Path:
    """Grouped bars: accuracy and macro-F1 per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [(n, m) for n, m in result["models"].items() if "skipped" not in m]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(done) + 2), 3.6))
    x = np.arange(len(done))
    ax.bar(x - 0.2, [m["accuracy"] for _, m in done], 0.4, label="accuracy")
    ax.bar(x + 0.2, [m["macro_f1"] for _, m in done], 0.4, label="macro-F1")
    ax.set_xticks(x, [n for n, _ in done], rotation=35, ha="right")
    ax.set_ylim(0, 1)
    ax.axhline(1 / len(result.get("labels", LABELS)), color="grey", lw=0.8, ls="--")  # chance
    ax.legend()
    ax.set_title(Path(result["manifest"]).name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
