"""Liveness and readiness, off the shared request pool.

`/healthz` runs on the event loop (never queued behind request threads); `/readyz` checks the database on its own
pool-less engine in a private thread with a short timeout, so a locked database or an exhausted pool answers
`not_ready` within seconds instead of hanging. Replies name no paths and no driver messages (those are logged).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from catalog.db import make_engine
from catalog.settings import get_settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 3.0
_probe_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")


@lru_cache(maxsize=4)
def _probe_engine(url: str) -> Engine:
    return make_engine(url, busy_timeout_s=READY_TIMEOUT_S - 0.5, pooled=False)


def _database_ok() -> None:
    with _probe_engine(get_settings().database_url).connect() as conn:
        conn.execute(text("SELECT 1"))


@router.get("/healthz", summary="The process answers")
async def healthz() -> Any:
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable and speech model loaded")
async def readyz(request: Request) -> Any:
    checks: dict[str, Any] = {}
    try:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.run_in_executor(_probe_pool, _database_ok), READY_TIMEOUT_S)
        checks["database"] = "ok"
    except TimeoutError:
        checks["database"] = "busy or unreachable (timed out)"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the detail goes to the log only
        log.warning("readiness: database check failed: %s: %s", type(exc).__name__, exc)
        checks["database"] = "unreachable"
    model = request.app.state.recognizer
    checks["speech_model"] = f"ok ({model.name})" if model is not None else f"not loaded: {request.app.state.model_error}"
    ready = checks["database"] == "ok" and model is not None
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503)
