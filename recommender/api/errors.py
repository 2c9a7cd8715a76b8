"""JSON errors: every refusal answers {"error": {"code": ..., "message": ...}} with a 4xx/5xx status.

Replies never carry exception classes, driver messages or server paths: unexpected errors are logged with a short
reference that the reply names. A database that stays locked (or a pool that stays exhausted) past the
`db_busy_timeout_s` budget answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.sessions import SessionError, is_lock_error

RETRY_AFTER_S = 2

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API reports as-is."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def busy_response() -> JSONResponse:
    return JSONResponse(error_body("busy", "the database is busy; retry shortly"), status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _internal(request: Request, exc: Exception) -> JSONResponse:
    ref = secrets.token_hex(4)
    log.error("unhandled error [ref %s] on %s %s", ref, request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", f"internal error (reference {ref} in the server log)"), status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON errors."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(SessionError)
    async def _session(_: Request, exc: SessionError) -> JSONResponse:
        if exc.status == 503:
            return busy_response()
        code = {403: "forbidden", 404: "not_found", 409: "conflict"}.get(exc.status, "bad_request")
        return JSONResponse(error_body(code, str(exc)), status_code=exc.status)

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        return busy_response()

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        if is_lock_error(exc):
            log.warning("database busy on %s %s: %s", request.method, request.url.path, exc.orig)
            return busy_response()
        return _internal(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}")
        return JSONResponse(error_body("invalid_request", "; ".join(parts) or "invalid request"), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))
