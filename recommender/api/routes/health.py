"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from catalog.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers")
def healthz() -> Any:
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable and speech model loaded")
def readyz(request: Request) -> Any:
    checks: dict[str, Any] = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}: {str(exc)[:200]}"
    model = request.app.state.recognizer
    checks["speech_model"] = f"ok ({model.name}, {model.path})" if model is not None else f"not loaded: {request.app.state.model_error}"
    ready = checks["database"] == "ok" and model is not None
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503)
