"""The FastAPI application: routers, JSON errors, upload limit, and the speech model loaded once per process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recommender.api import errors
from recommender.api.config import ApiConfig
from recommender.api.routes import catalog, crawls, health, recommendations, sessions

log = logging.getLogger(__name__)


def load_recognizer(cfg: ApiConfig):
    """The configured speech model (MUSICREC_SPEECH_MODEL), else the active speech EmotionModel; warmed up."""
    import torch

    from emotion.speech.artifact import SpeechRecognizer, active_model_path

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(cfg.torch_threads)
    threadpool_limits(cfg.torch_threads, user_api="blas")  # BLAS threads fight the request threads (116 -> 65 ms)
    path = cfg.speech_model or str(active_model_path())
    model = SpeechRecognizer(path)
    model.warm_up()
    log.info("speech model %s loaded from %s", model.name, path)
    return model


def create_app(cfg: ApiConfig | None = None) -> FastAPI:
    """A new app; the speech model is loaded at start-up (failure leaves /readyz at 503, not a crash)."""
    cfg = cfg or ApiConfig.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.recognizer = None
        app.state.model_error = "not loaded yet"
        try:
            app.state.recognizer = load_recognizer(cfg)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and 503 on recommendation requests
            app.state.model_error = f"{type(exc).__name__}: {exc}"
            log.error("speech model not loaded: %s", app.state.model_error)
        yield

    app = FastAPI(title="musicrec", version="1", summary="Voice-driven music recommendation", lifespan=lifespan)
    app.state.config = cfg
    app.state.recognizer = None
    app.state.model_error = "not loaded yet"
    errors.install(app)

    @app.middleware("http")
    async def upload_limit(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > cfg.max_upload_bytes + 64 * 1024:
            return JSONResponse(errors.error_body("upload_too_large", f"upload larger than {cfg.max_upload_bytes // (1024 * 1024)} MiB"), status_code=413)
        return await call_next(request)

    for module in (health, recommendations, sessions, catalog, crawls):
        app.include_router(module.router)
    return app
