"""`musicrec serve` (the HTTP API under uvicorn) and `musicrec recommend CLIP` (the same flow from the shell)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app() -> FastAPI:
    """The HTTP API with the workers' admin backend (the console's pipeline status and schedules): the app factory
    `musicrec serve` hands to uvicorn (`cli.serve_cmd:create_app`)."""
    from recommender.api.app import create_app as api_app
    from workers.admin import WorkersAdmin

    return api_app(admin=WorkersAdmin())


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="Uvicorn worker processes (each loads the speech model once)."),
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) against the configured catalog."""
    import uvicorn

    uvicorn.run("cli.serve_cmd:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")


def recommend(
    clip: Path = typer.Argument(..., help="Voice clip (WAV, FLAC, OGG or MP3)."),
    listener: str = typer.Option("cli", "--listener", help="Listener id (sessions are kept per listener and emotion)."),
    size: int = typer.Option(5, "--size", min=1, max=50, help="Songs per playlist once preferences are known."),
    model: Path | None = typer.Option(None, "--model", help="Speech model folder (default: the active speech model)."),
) -> None:
    """Hear the emotion in CLIP and print the playlist as JSON (last line), like POST /v1/recommendations."""
    from catalog.audio import AudioError
    from emotion.speech.artifact import ModelNotFoundError, SpeechRecognizer, active_model_path
    from recommender import sessions
    from recommender.api.config import ApiConfig

    cfg = ApiConfig.from_settings()
    try:
        recognizer = SpeechRecognizer(model or cfg.speech_model or active_model_path())
        heard = recognizer.predict_file(clip, cfg.limits)
    except (ModelNotFoundError, AudioError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rec = sessions.recommend(listener, heard.emotion, size, check=False)  # the shell user is trusted
    for song in rec.playlist:
        typer.echo(f"  {song['id']:>6}  {song['title']}  ({song['artist'] or '?'})  topic {song['topic_id']}", err=True)
    out = {"emotion": heard.emotion, "probabilities": heard.probabilities, "playlist": rec.playlist,
           "session_id": rec.session_id, "step": rec.step, "exhausted": rec.exhausted}
    if rec.listener_token:
        out["listener_token"] = rec.listener_token
    typer.echo(json.dumps(out))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("recommend")(recommend)
