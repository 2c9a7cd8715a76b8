"""Shared dependencies: the loaded speech model and the admin key check."""

from __future__ import annotations

import hmac

from fastapi import Header, Request

from emotion.speech.artifact import SpeechRecognizer
from recommender.api.config import ApiConfig
from recommender.api.errors import ApiError


def config(request: Request) -> ApiConfig:
    return request.app.state.config


def recognizer(request: Request) -> SpeechRecognizer:
    """The process's speech model (loaded once at start-up); 503 when it could not be loaded."""
    model = request.app.state.recognizer
    if model is None:
        raise ApiError(503, "model_unavailable", f"speech model not loaded: {request.app.state.model_error}")
    return model


def require_admin(x_api_key: str | None = Header(default=None, alias="X-API-Key")) -> None:
    """Refuse admin routes without a key listed in settings.api_keys (compared in constant time)."""
    from catalog.settings import get_settings

    keys = [k.get_secret_value() for k in get_settings().api_keys]
    if not x_api_key:
        raise ApiError(401, "unauthorized", "admin route: send an API key in the X-API-Key header")
    if not keys or not any(hmac.compare_digest(x_api_key.encode(), k.encode()) for k in keys):
        raise ApiError(403, "forbidden", "invalid API key")
