"""`musicrec benchmark speech`: speaker-grouped cross-validation of every speech model on one manifest, per corpus.

Every model is scored on the same speaker folds (`speaker_folds`: speakers dealt round-robin into k test groups)
beside two baselines measured in the same run:
- `whisper-probe`: the frozen Whisper encoder (configured model and layer), mean and std of its hidden states over
  the clip, standardised, multinomial logistic regression (the bar the default model must clear);
- `egemaps-svm`: openSMILE eGeMAPSv02 functionals (88 values per clip, the field's standard), standardised, RBF SVM.
A Whisper-only probe model trained on a manifest whose labels hold several categories (sub-classes, e.g. calm and
neutral inside relaxed) is also scored without them, as `<model> (no sub-classes)`.
Results are pooled over all held-out predictions and split per corpus of a merged manifest (`<source>/<speaker>`
groups). Writes benchmark.json, benchmark.md and benchmark.png (accuracy and macro-F1 per corpus and model).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from catalog.manifest import Item, corpus_of, read
from emotion.features.cache import stored_version
from emotion.speech.model import STACKS
from emotion.speech.preprocess import prepare
from emotion.speech.probe import WhisperStack
from emotion.speech.train import (
    LABELS,
    Example,
    cross_validate,
    load_examples,
    metrics,
    per_corpus,
    speaker_folds,
    subclass_table,
)

log = logging.getLogger(__name__)
BASELINES: tuple[str, ...] = ("whisper-probe", "egemaps-svm")
EGEMAPS_VERSION = "egemaps-v02-functionals-1"


def pooled_whisper(examples: list[Example]) -> np.ndarray:
    """Mean and std over each clip's Whisper frames: (N, 2d)."""
    return np.stack([np.concatenate([e.feats.whisper.mean(0), e.feats.whisper.std(0)]) for e in examples])  # type: ignore[union-attr]


def egemaps(items: list[Item], cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """openSMILE eGeMAPSv02 functionals (88,) of each item's prepared speech (cached per content in `cache_dir`)."""
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
    out: dict[str, np.ndarray] = {}
    for it in items:
        if it.audio is None:
            continue
        key = hashlib.sha256(it.audio.read_bytes() + stored_version("speech", EGEMAPS_VERSION).encode()).hexdigest()
        cached = cache_dir / f"{key}.npy" if cache_dir else None
        if cached is not None and cached.is_file():
            out[it.id] = np.load(cached)
            continue
        try:
            y = prepare(it.audio)
        except Exception as exc:  # noqa: BLE001 - an unusable clip is skipped here as load_examples skips it
            log.warning("egemaps: skipping %s: %s", it.id, exc)
            continue
        vec = smile.process_signal(y, 16000).to_numpy()[0].astype(np.float32)
        out[it.id] = vec
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, vec)
    return out


def sklearn_cv(name: str, x: np.ndarray, examples: list[Example], folds: list[list[str]]) -> dict[str, Any]:
    """Cross-validate a scikit-learn baseline on the same speaker folds; pooled and per-corpus metrics."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    y = np.array([e.label for e in examples])
    groups = np.array([e.group for e in examples])
    probs = np.zeros((len(examples), len(LABELS)))
    for test_speakers in folds:
        test = np.isin(groups, test_speakers)
        if name == "whisper-probe":
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        else:
            svm = SVC(C=1.0, kernel="rbf", class_weight="balanced", random_state=0)
            clf = make_pipeline(StandardScaler(), CalibratedClassifierCV(svm, ensemble=False))
        clf.fit(x[~test], y[~test])
        p = np.zeros((int(test.sum()), len(LABELS)))
        p[:, clf.classes_] = clf.predict_proba(x[test])
        probs[test] = p
    result = metrics(y.tolist(), probs)
    result["per_corpus"] = per_corpus(groups.tolist(), y.tolist(), probs)
    result["model"] = name
    return result


def run_benchmark(manifest_path: str | Path, models: list[str], out: str | Path, *, epochs: int = 12, folds: int = 5,
                  seed: int = 42, device: str = "auto", cache_dir: Path | None = None, baselines: bool = True,
                  progress: bool = True, limit_groups: int = 0) -> dict[str, Any]:
    """Cross-validate `models` and the baselines on the same speaker folds; write benchmark.json/.md/.png to `out`."""
    from emotion.features.whisper import WhisperEncoderFeatures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = read(manifest_path)
    items = manifest.items
    if limit_groups:
        keep = _spread_groups(items, limit_groups)
        items = [it for it in items if it.group in keep]
    enc = WhisperEncoderFeatures()
    report = load_examples(items, cache_dir, progress=progress, whisper=enc)
    examples = report.examples
    speakers = sorted({e.group for e in examples})
    fold_list = speaker_folds(speakers, folds)
    rows: dict[str, Any] = {}
    if baselines:
        t0 = time.perf_counter()
        rows["whisper-probe"] = sklearn_cv("whisper-probe", pooled_whisper(examples), examples, fold_list)
        rows["whisper-probe"]["seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        feats = egemaps([it for it in items if it.id in {e.id for e in examples}], cache_dir / "egemaps" if cache_dir else None)
        usable = [e for e in examples if e.id in feats]
        rows["egemaps-svm"] = sklearn_cv("egemaps-svm", np.stack([feats[e.id] for e in usable]), usable, fold_list)
        rows["egemaps-svm"]["seconds"] = round(time.perf_counter() - t0, 1)
    return _run_models(out, manifest, enc, items, examples, speakers, fold_list, rows, report.failed, models, epochs, seed,
                       device, cache_dir, progress)


def _run_models(out: Path, manifest: Any, enc: Any, items: list[Item], examples: list[Example], speakers: list[str],
                fold_list: list[list[str]], rows: dict[str, Any], failed: list, models: list[str], epochs: int, seed: int,
                device: str, cache_dir: Path | None, progress: bool) -> dict[str, Any]:
    folds = len(fold_list)
    for name in models:
        t0 = time.perf_counter()
        own = examples
        if name in STACKS:  # a Whisper-only probe reads its own encoders' frames and no handcrafted features
            own = load_examples(items, cache_dir, progress=progress, whisper=WhisperStack(STACKS[name]), handcrafted=False).examples
            if sorted({e.group for e in own}) != speakers:
                raise RuntimeError(f"{name}: the clips usable by its encoders cover other speakers than the benchmark's")
        rows[name] = cross_validate(own, name, epochs, seed, progress=progress, folds=folds, device=device)
        rows[name]["seconds"] = round(time.perf_counter() - t0, 1)
        if name in STACKS and subclass_table(own):  # the same probe over the plain labels, side by side
            t0 = time.perf_counter()
            flat = [replace(e, category="") for e in own]
            rows[f"{name} (no sub-classes)"] = cross_validate(flat, name, epochs, seed, progress=progress, folds=folds, device=device)
            rows[f"{name} (no sub-classes)"]["seconds"] = round(time.perf_counter() - t0, 1)
        _write(out, manifest, enc, fold_list, epochs, rows, failed)  # keep partial results of a long run
    return _write(out, manifest, enc, fold_list, epochs, rows, failed)


def _spread_groups(items: list[Item], n: int) -> set[str]:
    """`n` groups taken alternately from each corpus (for --quick runs)."""
    by_corpus: dict[str, list[str]] = {}
    for g in sorted({it.group for it in items}):
        by_corpus.setdefault(corpus_of(g), []).append(g)
    picked: list[str] = []
    while len(picked) < n and any(by_corpus.values()):
        for c in sorted(by_corpus):
            if by_corpus[c] and len(picked) < n:
                picked.append(by_corpus[c].pop(0))
    return set(picked)


def _write(out: Path, manifest: Any, enc: Any, folds: list[list[str]], epochs: int, rows: dict[str, Any], failed: list) -> dict[str, Any]:
    result = {
        "manifest": str(manifest.path),
        "manifest_sha256": manifest.digest(),
        "protocol": f"{len(folds)}-fold speaker-grouped cross-validation (same folds for every model)",
        "folds": folds,
        "epochs": epochs,
        "whisper": {"model": enc.model, "layer": enc.layer, "version": enc.version},
        "skipped": len(failed),
        "models": rows,
    }
    (out / "benchmark.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    (out / "benchmark.md").write_text(markdown(result), encoding="utf-8")
    chart(result, out / "benchmark.png")
    return result


def markdown(result: dict[str, Any]) -> str:
    corpora = sorted({c for m in result["models"].values() for c in m.get("per_corpus", {})})
    head = ["model", *[f"{c} acc / macro-F1" for c in corpora], "all acc / macro-F1", "happy F1", "seconds"]
    title = (f"Speech emotion, {result['protocol']}; Whisper {result['whisper']['model']} layer {result['whisper']['layer']}; "
             f"{result['epochs']} epochs per fold.")
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, m in result["models"].items():
        cells = [f"`{name}`"]
        for c in corpora:
            pc = m.get("per_corpus", {}).get(c)
            cells.append(f"{pc['accuracy']:.3f} / {pc['macro_f1']:.3f}" if pc else "-")
        cells += [f"{m['accuracy']:.3f} / {m['macro_f1']:.3f}", f"{m['per_class_f1']['happy']:.3f}", str(m.get("seconds", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["models"])
    corpora = sorted({c for m in result["models"].values() for c in m.get("per_corpus", {})}) or ["all"]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names)), 3.6))
    width = 0.8 / len(corpora)
    for k, c in enumerate(corpora):
        vals = [result["models"][n].get("per_corpus", {}).get(c, result["models"][n])["accuracy"] for n in names]
        ax.bar(np.arange(len(names)) + k * width, vals, width, label=c)
    ax.set_xticks(np.arange(len(names)) + width * (len(corpora) - 1) / 2, names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy, unseen speakers")
    ax.legend()
    ax.set_title(result["protocol"], fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
