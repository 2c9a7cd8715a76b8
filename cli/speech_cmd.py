"""`musicrec train speech`, `evaluate speech` and `benchmark speech`: the speech emotion models (the default
Whisper-only probe, Whisper + HSF + CRNN, and the paper's HSF + CRNN with its baselines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from emotion.speech.model import DEFAULT_MODEL, MODEL_NAMES, STACKS


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _read_manifest(path: Path) -> Any:
    from catalog.manifest import ManifestError, read

    try:
        return read(path)
    except ManifestError as exc:
        _fail(str(exc))


def _whisper(model: str = "whisper-hsf-crnn"):  # type: ignore[no-untyped-def]
    """The Whisper encoder(s) `model` reads (None for the models without Whisper): the pair of a Whisper-only probe,
    else the configured one (whisper_model, whisper_layer); a clear error when weights are missing."""
    from emotion.features.base import EncoderError
    from emotion.speech.probe import encoder_for

    try:
        return encoder_for(model)
    except EncoderError as exc:
        _fail(str(exc))


def _cache_dir() -> Path:
    from catalog.settings import get_settings

    return get_settings().var_dir / "cache" / "speech"


def train_speech(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Manifest CSV (group column = speaker)."),
    model: str = typer.Option("default", "--model", help=f"'default' ({DEFAULT_MODEL}) or one of {', '.join(MODEL_NAMES)}."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    seed: int = typer.Option(42, "--seed"),
    cv: bool = typer.Option(False, "--cv", help="Leave-one-speaker-out cross-validation instead of one split; writes OUT/cv.json."),
    folds: int = typer.Option(0, "--folds", help="With --cv: number of speaker-grouped folds (0: leave-one-speaker-out)."),
    register_model: bool = typer.Option(True, "--register/--no-register", help="Record the artifact as the active speech model."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: torch's default; 1 is fastest on a busy machine)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda."),
    utterance_norm: bool = typer.Option(False, "--utterance-norm/--no-utterance-norm", help="Per-utterance spectrogram mean normalisation."),
) -> None:
    """Train a speech emotion model (or cross-validate it) and print JSON metrics.

    Splits as for songs: rows marked test in the manifest are held out and scored; validation speakers are the
    manifest's val rows, else a speaker-grouped 15 % of the rest (`musicrec datasets split` marks a test split); every
    other speaker trains the model. Without test rows the validation scores are printed (`scored_on`)."""
    import torch

    from emotion.runs import train_val_items
    from emotion.speech import artifact
    from emotion.speech.train import cross_validate, fit, load_examples, metrics, predict_normalised
    from emotion.train import TrainConfig

    if threads:
        torch.set_num_threads(threads)
    if model == "default":
        model = DEFAULT_MODEL
    if model not in MODEL_NAMES:
        _fail(f"unknown --model {model!r}; choose default or one of {', '.join(MODEL_NAMES)}")
    m = _read_manifest(manifest)
    whisper = _whisper(model)
    report = load_examples(m.items, _cache_dir(), whisper=whisper, handcrafted=model not in STACKS)
    for item_id, reason in report.failed:
        typer.echo(f"skipped {item_id}: {reason}", err=True)
    if not report.examples:
        _fail("no usable clips in the manifest")
    if cv:
        if len({e.group for e in report.examples}) < 3:
            _fail("cross-validation needs at least 3 speakers (group column)")
        cv_result = cross_validate(report.examples, model, epochs, seed, folds=folds or None, device=device, utterance_norm=utterance_norm)
        cv_result.update(manifest_sha256=m.digest(), epochs=epochs, seed=seed, skipped=len(report.failed))
        out.mkdir(parents=True, exist_ok=True)
        (out / "cv.json").write_text(json.dumps(cv_result, indent=2))
        typer.echo(json.dumps(cv_result))
        return
    # as for songs (emotion.runs.train_val_items): test rows only where the manifest marks them, validation speakers
    # from the manifest or carved group-aware from the rest; every other speaker trains the model
    train_items, val_items, val_source = train_val_items(m, TrainConfig.val_fraction, seed)
    splits = {it.id: "test" for it in m.items if it.split == "test"}
    splits.update({it.id: "train" for it in train_items} | {it.id: "val" for it in val_items})
    parts = {name: [e for e in report.examples if splits.get(e.id) == name] for name in ("train", "val", "test")}
    if not parts["train"]:
        _fail("no training clips (rows with split train or none)")
    result = fit(model, parts["train"], parts["val"] or None, epochs=epochs, seed=seed, device=device, utterance_norm=utterance_norm)
    test = parts["test"]
    if test:
        scores, scored_on = metrics([e.label for e in test], predict_normalised(result.model, [result.normaliser.apply(e.feats) for e in test])), "test"
    else:
        scores, scored_on = result.val_metrics or {}, "val" if result.val_metrics else "none"
    groups = {name: sorted({e.group for e in part}) for name, part in parts.items()}
    meta = {
        "version": datetime.now(UTC).strftime("%Y%m%dT%H%M%S"),
        "manifest": str(m.path),
        "manifest_sha256": m.digest(),
        "epochs": epochs,
        "best_epoch": result.best_epoch,
        "subclasses": result.subclasses,
        "seed": seed,
        "split_groups": groups,
        "history": result.history,
        "metrics": scores,
        "scored_on": scored_on,
        "val_split": val_source,
        "skipped": report.failed,
        **({"whisper": artifact.whisper_meta(whisper)} if whisper is not None else {}),
    }
    artifact.save(out, result.model, result.normaliser, meta)
    model_id = artifact.register(out, scores) if register_model else None
    summary = {"model": model, "artifact": str(out.resolve()), "model_id": model_id, "split_groups": groups, "best_epoch": result.best_epoch,
               "scored_on": scored_on, "n_train": len(parts["train"]), "n_val": len(parts["val"]), "n_test": len(test),
               "subclasses": result.subclasses}
    typer.echo(json.dumps({**scores, **summary}))


def evaluate_speech(
    model: Path = typer.Option(..., "--model", help="Artifact folder written by `musicrec train speech`."),
    manifest: Path = typer.Option(..., "--manifest", "-m"),
    split: str = typer.Option("", "--split", help="Score only this split (train/val/test); default: every row."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on the last line."),
) -> None:
    """Score a speech model on a manifest: accuracy, macro-F1, per-class F1, confusion matrix."""
    from emotion.speech import artifact
    from emotion.speech.train import load_examples, metrics

    try:
        recognizer = artifact.SpeechRecognizer(model)
    except (artifact.ModelNotFoundError, FileNotFoundError) as exc:
        _fail(str(exc))
    m = _read_manifest(manifest)
    items = m.items
    if split:
        if all(it.split for it in items):
            items = [it for it in items if it.split == split]
        else:  # a manifest without a split column: the speakers the model's training put in that split
            groups = set((recognizer.meta.get("split_groups") or {}).get(split, []))
            items = [it for it in items if it.group in groups]
        if not items:
            _fail(f"no rows in split {split!r}")
    report = load_examples(items, _cache_dir(), progress=not as_json, whisper=recognizer.whisper, handcrafted=recognizer.handcrafted)
    for item_id, reason in report.failed:
        typer.echo(f"skipped {item_id}: {reason}", err=True)
    from emotion.speech.train import predict_normalised

    probs = predict_normalised(recognizer.model, [recognizer.normaliser.apply(e.feats) for e in report.examples])
    scores = metrics([e.label for e in report.examples], probs)
    if as_json:
        typer.echo(json.dumps(scores))
        return
    typer.echo(f"n={scores['n']} accuracy={scores['accuracy']:.3f} macro_f1={scores['macro_f1']:.3f}")
    for label, f1 in scores["per_class_f1"].items():
        typer.echo(f"  {label:8s} F1={f1:.3f}")
    typer.echo("confusion (rows true, cols predicted): " + " ".join(scores["labels"]))
    for label, row in zip(scores["labels"], scores["confusion"], strict=True):
        typer.echo(f"  {label:8s} {row}")


def benchmark_speech(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Speech manifest (merged EmoDB + RAVDESS: groups <corpus>/<speaker>)."),
    models: str = typer.Option("all", "--models", help=f"Comma-separated speech models or 'all' ({', '.join(MODEL_NAMES)})."),
    out: Path = typer.Option(Path("var/benchmarks/speech"), "--out", help="Folder for benchmark.md/json/png."),
    epochs: int = typer.Option(12, "--epochs", min=1),
    folds: int = typer.Option(5, "--folds", min=2, help="Speaker-grouped folds (the same for every model)."),
    seed: int = typer.Option(42, "--seed"),
    device: str = typer.Option("auto", "--device"),
    quick: bool = typer.Option(False, "--quick", help="6 speakers, 3 folds, 2 epochs: a smoke run under a few minutes."),
    threads: int = typer.Option(0, "--threads", min=0),
) -> None:
    """Speaker-grouped CV of every speech model beside a frozen-Whisper probe and openSMILE eGeMAPS + SVM, per corpus."""
    import torch

    from emotion.speech.benchmark import markdown, run_benchmark

    if threads:
        torch.set_num_threads(threads)
    names = list(MODEL_NAMES) if models == "all" else [m.strip() for m in models.split(",") if m.strip()]
    names = [DEFAULT_MODEL if n == "default" else n for n in names]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        _fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
    _read_manifest(manifest)
    _whisper()
    if quick:
        epochs, folds = 2, 3
    result = run_benchmark(manifest, names, out, epochs=epochs, folds=folds, seed=seed, device=device,
                           cache_dir=_cache_dir(), progress=False, limit_groups=6 if quick else 0)
    typer.echo(markdown(result))
    typer.echo(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, {out / 'benchmark.png'}")
    typer.echo(json.dumps({n: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                               "per_corpus": {c: {"accuracy": v["accuracy"], "macro_f1": v["macro_f1"]} for c, v in m.get("per_corpus", {}).items()}}
                           for n, m in result["models"].items()}))


def register(app: typer.Typer) -> None:
    """Attach the speech commands to the `train`, `evaluate` and `benchmark` groups of the main app."""
    groups = {g.name: g.typer_instance for g in app.registered_groups if g.typer_instance is not None}
    groups["train"].command("speech")(train_speech)
    groups["evaluate"].command("speech")(evaluate_speech)
    bench = groups.get("benchmark")
    if bench is None:
        bench = typer.Typer(help="Compare models side by side.", no_args_is_help=True)
        app.add_typer(bench, name="benchmark")
    bench.command("speech")(benchmark_speech)
