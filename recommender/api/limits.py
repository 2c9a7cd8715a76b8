"""A pure ASGI middleware that bounds request bodies, whether they announce a Content-Length or arrive chunked."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """The client sent more than the limit; raised inside the app's receive() and answered 413 here."""


class BodyLimit:
    """Answer 413 as soon as a body exceeds `max_bytes`: at once for a too-large Content-Length, otherwise when the
    running count of received bytes passes the limit (nothing past it is read, spooled or parsed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        mib = self.max_bytes / (1024 * 1024)
        body = json.dumps({"error": {"code": "upload_too_large", "message": f"upload larger than {mib:g} MiB"}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        exceeded = False
        forwarded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal forwarded
            if exceeded and not forwarded:
                return  # whatever the app answers to the cut-off body (400, 500) is replaced by our 413
            forwarded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # FastAPI wraps errors raised while parsing a form; only our own cut-off is answered here.
            if not exceeded or forwarded:
                raise
        if exceeded and not forwarded:
            await self._refuse(send)
