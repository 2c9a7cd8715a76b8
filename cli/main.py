"""The `musicrec` console script: one Typer app; each area registers its commands from its own module."""

from __future__ import annotations

import logging

import typer

from cli import config_cmd, crawl_cmd, datasets_cmd, db_cmd, demo_cmd, emotion_cmd, features_cmd, models_cmd, serve_cmd, speech_cmd, topics_cmd, worker_cmd

app = typer.Typer(name="musicrec", help="Voice-driven music recommendation backend.", no_args_is_help=True, add_completion=False)
train_app = typer.Typer(help="Train emotion models (songs or speech).", no_args_is_help=True)
evaluate_app = typer.Typer(help="Score a trained model on a manifest.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")

for module in (config_cmd, db_cmd, datasets_cmd, demo_cmd, speech_cmd, crawl_cmd, features_cmd, serve_cmd, emotion_cmd, models_cmd, topics_cmd, worker_cmd):
    module.register(app)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    from catalog.settings import get_settings

    level = logging.DEBUG if verbose else getattr(logging, get_settings().log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


def main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        app()
    except (OperationalError, ProgrammingError) as exc:
        text = str(exc.orig)
        if "no such table" not in text and not ("relation" in text and "does not exist" in text):
            raise
        # a catalog without its schema: say how to fix it instead of a driver traceback
        typer.echo("error: the catalog database has no schema yet; run `musicrec db upgrade` first", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
