"""A cap on every request body, checked while it arrives (ASGI middleware).

JSON bodies are parsed in memory, so they get a small cap; the upload routes
stream to disk and check their own, larger limits; the telemetry receivers are
capped where they are mounted. Anything else over the JSON cap is refused here.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Routes that stream their body and bound it themselves.
_STREAMED = re.compile(
    r"^(/api/v1/runs/[^/]+/artifacts/.+|/api/v1/models/[^/]+/versions/upload|/v1/(traces|metrics))$"
)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413, unless the route streams its own."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> JSONResponse:
        error = f"request bodies are limited to {self.limit} bytes"
        body = {"error": error, "code": "payload_too_large", "hint": None}
        return JSONResponse(body, status_code=413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _STREAMED.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refusal()(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if started:
                raise
            await self._refusal()(scope, receive, send)
