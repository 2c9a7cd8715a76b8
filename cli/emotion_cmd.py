"""`musicrec train|evaluate|benchmark emotion`, `musicrec models list|activate`, `musicrec label`: song emotion models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from emotion.train import TrainConfig


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _params(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values parsed as JSON when they can be (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--param expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _config(
    model: str,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    batch_size: int | None,
    audio_encoder: str | None,
    lyrics_encoder: str | None,
    lr: float | None,
    params: list[str],
    settings: list[str],
    workers: int | None,
    manifest: Path | None = None,
) -> TrainConfig:
    from dataclasses import fields

    from emotion.inputs import default_audio_encoder
    from emotion.models import REGISTRY, default_for, resolve
    from emotion.train import TrainConfig

    if model == "default" and manifest is not None:  # the shipped best for this manifest's modalities
        from catalog.manifest import ManifestError, read

        try:
            model = default_for(read(manifest).items)
        except ManifestError as exc:
            _fail(str(exc))
    model = resolve(model)
    if model not in REGISTRY:
        _fail(f"unknown --model {model!r}; choose one of default, {', '.join(REGISTRY)}")
    # TrainConfig defaults < the model's own recipe < --set < explicit options
    recipe = dict(REGISTRY[model].recipe)
    cfg = TrainConfig(model=model, model_params=_params(params), **recipe)
    cfg.audio_encoder = audio_encoder or recipe.get("audio_encoder") or default_audio_encoder()
    known = {f.name for f in fields(TrainConfig)}
    for key, value in _params(settings).items():
        if key not in known:
            _fail(f"unknown --set {key!r}; known: {', '.join(sorted(known))}")
        setattr(cfg, key, value)
    for key, value in (
        ("epochs", epochs),
        ("seed", seed),
        ("device", device),
        ("batch_size", batch_size),
        ("lyrics_encoder", lyrics_encoder),
        ("lr", lr),
        ("workers", workers),
    ):
        if value is not None:
            setattr(cfg, key, value)
    return cfg


MANIFEST = typer.Option(..., "--manifest", "-m", help="Manifest CSV (id,label,audio,lyrics,group,split).")
EPOCHS = typer.Option(None, "--epochs", min=1, help="Training epochs (default 100).")
SEED = typer.Option(None, "--seed", help="Random seed (default 42).")
DEVICE = typer.Option(None, "--device", help="cpu, cuda or auto (default: settings).")
BATCH = typer.Option(None, "--batch-size", min=2, help="Training batch size (default 8).")
AUDIO_ENC = typer.Option(None, "--audio-encoder", help="An encoder (lld, tonal, musicnn, musicnn-mtt, ast, whisper, whisper-tiny.en-l2, ...) "
                         "or several joined by '+' (default: the model's recipe, else musicnn; lld without musicnn's weights).")
LYRICS_ENC = typer.Option(None, "--lyrics-encoder", help="Lyrics encoder: bert-cnn, minilm, mpnet or several joined by '+' "
                          "(default: the model's recipe, else bert-cnn; probe-fusion: minilm+mpnet).")
LR = typer.Option(None, "--lr", help="Learning rate (default 5e-5).")
PARAM = typer.Option([], "--param", help="Model hyperparameter key=value (repeatable), e.g. hidden=256.")
SET = typer.Option([], "--set", help="Training setting key=value (repeatable), e.g. focal_gamma=0 plateau_patience=10.")
WORKERS = typer.Option(None, "--workers", min=1, help="Feature extraction processes (default 1).")


def train_emotion(
    manifest: Path = MANIFEST,
    model: str = typer.Option("songgatnet", "--model", help="Model name (see `musicrec models names`); 'default' is the shipped best song model "
                              "(probe-fusion for a manifest of audio + lyrics)."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write."),
    epochs: int | None = EPOCHS, seed: int | None = SEED, device: str | None = DEVICE, batch_size: int | None = BATCH,
    audio_encoder: str | None = AUDIO_ENC, lyrics_encoder: str | None = LYRICS_ENC, lr: float | None = LR,
    param: list[str] = PARAM, set_: list[str] = typer.Option([], "--set", help=SET.help),
    workers: int | None = WORKERS,
    register_model: bool = typer.Option(True, "--register/--no-register", help="Record the artifact in emotion_models."),
) -> None:
    """Train a song emotion model; best checkpoint by validation macro-F1; write and register the artifact."""
    from catalog.manifest import ManifestError
    from emotion.runs import RunError, train_manifest

    cfg = _config(model, epochs, seed, device, batch_size, audio_encoder, lyrics_encoder, lr, param, set_, workers, manifest)
    try:
        report = train_manifest(manifest, out, cfg, register=register_model)
    except (ManifestError, RunError, ValueError) as exc:
        _fail(str(exc))
    for f in report.failures:
        typer.echo(f"skipped {f}", err=True)
    from emotion.evaluate import summary_line

    typer.echo(f"{cfg.model}: {report.n_train} train / {report.n_val} val, best epoch {report.best_epoch}; val {summary_line(report.val_metrics)}")
    typer.echo(f"artifact: {report.out}" + (f" (emotion_models id {report.model_id})" if report.model_id else ""))


def evaluate_emotion(
    model: Path = typer.Option(..., "--model", help="Artifact folder from `musicrec train emotion`."),
    manifest: Path = MANIFEST,
    split: str | None = typer.Option(None, "--split", help="Score only this split (train/val/test); default every row."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
    device: str | None = DEVICE,
    predictions: Path | None = typer.Option(None, "--predictions", help="Also write per-song predictions (JSON)."),
) -> None:
    """Score a trained model on a manifest: accuracy, macro P/R/F1, per-class F1, confusion, one-vs-rest AUC."""
    from catalog.manifest import ManifestError
    from emotion.artifact import ArtifactError
    from emotion.evaluate import summary_line
    from emotion.runs import RunError, evaluate_manifest
    from emotion.train import resolve_device

    try:
        report = evaluate_manifest(model, manifest, split, resolve_device(device or "auto"), progress=not as_json)
    except (ManifestError, RunError, ArtifactError) as exc:
        _fail(str(exc))
    for f in report.failures:
        typer.echo(f"not scored {f}", err=True)
    if predictions:
        predictions.write_text(json.dumps(report.predictions, indent=1) + "\n", encoding="utf-8")
    m = report.metrics
    if as_json:
        typer.echo(json.dumps(m))
        return
    typer.echo(summary_line(m))
    auc = m["macro_auc"] if m["macro_auc"] is None else round(m["macro_auc"], 3)
    typer.echo(f"macro precision {m['macro_precision']:.3f}, macro recall {m['macro_recall']:.3f}, macro AUC {auc}")
    typer.echo("confusion (rows true, columns predicted: " + ", ".join(m["labels"]) + "):")
    for label, row in zip(m["labels"], m["confusion"], strict=True):
        typer.echo(f"  {label:>8} {row}")
    typer.echo(f"confusion matrix: {report.confusion_png}")


def benchmark_emotion(
    manifest: Path = MANIFEST,
    models: str = typer.Option("all", "--models", help="Comma-separated model names or 'all'."),
    out: Path = typer.Option(Path("var/benchmarks/emotion"), "--out", help="Folder for benchmark.md/json/png and the artifacts."),
    epochs: int | None = EPOCHS, seed: int | None = SEED, device: str | None = DEVICE, batch_size: int | None = BATCH,
    audio_encoder: str | None = AUDIO_ENC, lyrics_encoder: str | None = LYRICS_ENC, lr: float | None = LR,
    set_: list[str] = typer.Option([], "--set", help=SET.help),
    workers: int | None = WORKERS,
    test: float = typer.Option(0.2, "--test", help="Test fraction of the group-aware split when the manifest has no test rows."),
    val: float = typer.Option(0.15, "--val", help="Validation fraction of the group-aware split."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Models trained in parallel processes (one torch thread each)."),
) -> None:
    """Train and score every model on the same split; write a Markdown + JSON table and a PNG chart."""
    from catalog.manifest import ManifestError
    from emotion.benchmark import markdown, run_benchmark
    from emotion.models import REGISTRY
    from emotion.runs import RunError

    names = list(REGISTRY) if models == "all" else [m.strip() for m in models.split(",") if m.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        _fail(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    cfg = _config(names[0], epochs, seed, device, batch_size, audio_encoder, lyrics_encoder, lr, [], set_, workers)
    try:
        if jobs > 1 and not cfg.threads:
            cfg.threads = 1
        result = run_benchmark(manifest, names, out, cfg, val=val, test=test, jobs=jobs)
    except (ManifestError, RunError) as exc:
        _fail(str(exc))
    typer.echo(markdown(result))
    typer.echo(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, {out / 'benchmark.png'}")
    typer.echo(json.dumps({n: ({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]} if "skipped" not in m else m) for n, m in result["models"].items()}))


def _models_app() -> typer.Typer:
    app = typer.Typer(help="Registered song emotion models.", no_args_is_help=True)

    @app.command("list")
    def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
        """Every registered song model with its validation macro-F1; * marks the active one."""
        from sqlalchemy import select

        from catalog.db import session_scope
        from catalog.models import EmotionModel

        with session_scope() as s:
            rows = list(s.scalars(select(EmotionModel).where(EmotionModel.kind == "song").order_by(EmotionModel.id)))
            data = [{"id": r.id, "name": r.name, "version": r.version, "active": r.active, "artifact": r.artifact_path,
                     "val_macro_f1": (r.metrics or {}).get("val", {}).get("macro_f1")} for r in rows]
        if as_json:
            typer.echo(json.dumps(data))
            return
        if not data:
            typer.echo("no song emotion models registered; run `musicrec train emotion`")
        for d in data:
            f1 = "-" if d["val_macro_f1"] is None else f"{d['val_macro_f1']:.3f}"
            typer.echo(f"{'*' if d['active'] else ' '} {d['id']:>4}  {d['name']:<16} {d['version']:<28} val macro-F1 {f1}  {d['artifact']}")

    @app.command("activate")
    def activate(model_id: int = typer.Argument(..., help="emotion_models id (see `musicrec models list`).")) -> None:
        """Make this model the one `musicrec label` uses."""
        from emotion.artifact import ArtifactError
        from emotion.artifact import activate as do_activate

        try:
            do_activate(model_id)
        except ArtifactError as exc:
            _fail(str(exc))
        typer.echo(f"active song emotion model: {model_id}")

    @app.command("names")
    def names() -> None:
        """The model names `--model` accepts."""
        from emotion.models import BIMODAL_DEFAULT_MODEL, DEFAULT_MODEL, REGISTRY

        typer.echo(f"{'default':<16} the shipped best song model: {DEFAULT_MODEL} with its recipe (musicnn + Whisper tiny.en and base layer 2, 3 s segments); "
                   f"{BIMODAL_DEFAULT_MODEL} for a manifest whose songs mostly have audio and lyrics")
        for name, spec in REGISTRY.items():
            typer.echo(f"{name:<16} {spec.description}")

    return app


def label(
    all_: bool = typer.Option(False, "--all", help="Relabel every song."),
    new: bool = typer.Option(False, "--new", help="Only songs without a label from the active model (default)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    device: str | None = DEVICE,
) -> None:
    """Label catalog songs with the active song emotion model; failing songs are recorded, not fatal."""
    from emotion.label import LabelError, label_songs
    from emotion.train import resolve_device

    if all_ and new:
        _fail("choose one of --all and --new")
    try:
        report = label_songs("all" if all_ else "new", batch_size, device=resolve_device(device or "auto"))
    except LabelError as exc:
        _fail(str(exc))
    for song_id, reason in report.failures:
        typer.echo(f"failed song {song_id}: {reason}", err=True)
    typer.echo(f"model {report.model_id}: labelled {report.labelled}, failed {report.failed}")


def register(app: typer.Typer) -> None:
    """Attach to the `train`, `evaluate` (and `benchmark`) groups; add `models` and `label`."""
    groups = {g.name: g.typer_instance for g in app.registered_groups if g.typer_instance is not None}
    groups["train"].command("emotion")(train_emotion)
    groups["evaluate"].command("emotion")(evaluate_emotion)
    bench = groups.get("benchmark")
    if bench is None:
        bench = typer.Typer(help="Compare models side by side.", no_args_is_help=True)
        app.add_typer(bench, name="benchmark")
    bench.command("emotion")(benchmark_emotion)
    app.add_typer(_models_app(), name="models")
    app.command("label")(label)
