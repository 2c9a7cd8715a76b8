"""`musicrec demo`: the end-to-end run that `make demo` starts."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        data: Path = typer.Option(Path("../shared/data"), "--data", help="Folder of the shared real data sets."),
        songs: int = typer.Option(60, "--songs", min=4, help="Songs on the demo site (q4 test-split clips, held-out artists)."),
        train_per_quadrant: int = typer.Option(60, "--train-per-quadrant", min=2,
                                               help="At most this many q4 train+val clips per quadrant for the song model (bounds the demo's time)."),
        song_epochs: int | None = typer.Option(None, "--song-epochs", min=1, help="Song model epochs (default: the default model's recipe)."),
        speech_epochs: int = typer.Option(15, "--speech-epochs", min=1),
    ) -> None:
        """Run the whole system on one machine: data, models, a crawled demo site, workers, topics, the API, a voice clip."""
        from cli.demo import DemoError, run_demo

        try:
            run_demo(data, songs, song_epochs, speech_epochs, train_per_quadrant)
        except DemoError as exc:
            typer.secho(f"demo failed: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc
