"""The FastAPI application: routers, JSON errors, bounded uploads, and the speech model loaded once per process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from recommender import console
from recommender.api import errors
from recommender.api.config import ApiConfig
from recommender.api.limits import BodyLimit
from recommender.api.routes import catalog, crawls, health, media, recommendations, sessions
from recommender.console.backend import AdminBackend

log = logging.getLogger(__name__)
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other form fields around the clip


def load_recognizer(cfg: ApiConfig) -> Any:
    """The configured speech model (MUSICREC_SPEECH_MODEL), else the active speech EmotionModel; warmed up."""
    import torch
    from threadpoolctl import threadpool_limits

    from emotion.speech.artifact import SpeechRecognizer, active_model_path

    torch.set_num_threads(cfg.torch_threads)
    threadpool_limits(cfg.torch_threads, user_api="blas")  # BLAS threads fight the request threads (116 -> 65 ms)
    path = cfg.speech_model or str(active_model_path())
    model = SpeechRecognizer(path)
    model.warm_up()
    log.info("speech model %s loaded from %s", model.name, path)
    return model


def create_app(cfg: ApiConfig | None = None, admin: AdminBackend | None = None) -> FastAPI:
    """A new app; the speech model is loaded at start-up (failure leaves /readyz at 503, not a crash).

    `admin` serves the console's pipeline status and schedule routes (`musicrec serve` passes the workers' one,
    `cli.serve_cmd.create_app`); without it those routes answer 503.
    """
    cfg = cfg or ApiConfig.from_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.recognizer = None
        app.state.model_error = "not loaded yet"
        try:
            app.state.recognizer = load_recognizer(cfg)
        except Exception as exc:  # noqa: BLE001 - logged; /readyz and recommendation requests answer 503
            app.state.model_error = "could not be loaded (see the server log)"
            log.error("speech model not loaded: %s: %s", type(exc).__name__, exc)
        yield

    app = FastAPI(title="musicrec", version="1", summary="Voice-driven music recommendation", lifespan=lifespan)
    app.state.config = cfg
    app.state.admin = admin
    app.state.recognizer = None
    app.state.model_error = "not loaded yet"
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes + FORM_OVERHEAD)
    for module in (health, recommendations, sessions, catalog, crawls, media):
        app.include_router(module.router)
    console.install(app)  # the web console: /, /topics, /admin and /v1/admin/*
    return app
