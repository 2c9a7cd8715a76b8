"""Shared dependencies: the loaded speech model, the admin key check, the listener token, and validated ids."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Header, Path, Request

from recommender.api.config import ApiConfig
from recommender.api.errors import ApiError

MAX_DB_ID = 2**31 - 1  # INTEGER primary keys (PostgreSQL int4): a larger id can name no row
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="A row id.")]
LISTENER_TOKEN_HEADER = "X-Listener-Token"


def config(request: Request) -> ApiConfig:
    cfg: ApiConfig = request.app.state.config
    return cfg


def recognizer(request: Request) -> Any:
    """The process's speech model (loaded once at start-up); 503 when it could not be loaded."""
    model = request.app.state.recognizer
    if model is None:
        raise ApiError(503, "model_unavailable", f"speech model not loaded: {request.app.state.model_error}")
    return model


def listener_token(x_listener_token: str | None = Header(default=None, alias=LISTENER_TOKEN_HEADER)) -> str | None:
    """The `X-Listener-Token` header (the secret issued with a listener's first recommendation), or None."""
    return x_listener_token or None


def require_listener_token(token: str | None = Header(default=None, alias=LISTENER_TOKEN_HEADER)) -> str:
    """Session reads and events need the owning listener's token (403 without one)."""
    if not token:
        raise ApiError(403, "forbidden", f"send the listener's token in the {LISTENER_TOKEN_HEADER} header")
    return token


def require_admin(x_api_key: str | None = Header(default=None, alias="X-API-Key")) -> None:
    """Refuse admin routes without a key listed in settings.api_keys (compared in constant time)."""
    from catalog.settings import get_settings

    keys = [k.get_secret_value() for k in get_settings().api_keys]
    if not x_api_key:
        raise ApiError(401, "unauthorized", "admin route: send an API key in the X-API-Key header")
    if not keys or not any(hmac.compare_digest(x_api_key.encode(), k.encode()) for k in keys):
        raise ApiError(403, "forbidden", "invalid API key")
