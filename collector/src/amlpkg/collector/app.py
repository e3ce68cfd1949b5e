"""The collector's HTTP side: OTLP/HTTP ``/v1/traces`` and ``/v1/metrics`` (protobuf) and
``/v1/devices`` (JSON device messages, for standalone agents without an MQTT broker).

Every answer that is not a success is JSON ``{"error", "hint"}`` with its status: bad
input is 4xx from the amlpkg error it raised, and anything else is a bug, logged with
an id that the generic 500 answer repeats. Bodies are bounded before they are read
(``Content-Length`` first, then a capped stream read): 413 beyond the limit.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from amlpkg.collector.otlp import rows_from_metrics, rows_from_traces
from amlpkg.collector.store import TelemetryRow, TelemetryStore, row_from_device_message
from amlpkg.errors import AmlpkgError, InvalidArgumentError, PayloadTooLargeError

log = logging.getLogger(__name__)
PROTOBUF = "application/x-protobuf"
MAX_BODY = 16 * 1024 * 1024
"""An OTLP export (traces or metrics) is at most this many bytes."""
MAX_DEVICE_BODY = 1024 * 1024
"""A ``/v1/devices`` batch is at most this many bytes (a message is a few hundred)."""

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(exc: AmlpkgError) -> JSONResponse:
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.http_status)


def _json_errors(endpoint: Endpoint) -> Endpoint:
    """Answer every exception of ``endpoint`` as JSON: 4xx for bad input, 500 for bugs."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except AmlpkgError as exc:
            if exc.http_status >= 500:
                log.warning("%s %s: %s", request.method, request.url.path, exc)
            return _error(exc)
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("collector bug %s on %s %s", incident, request.method, request.url.path)
            return JSONResponse(
                {
                    "error": f"internal error {incident}",
                    "hint": "the collector's log has the details under this id",
                },
                status_code=500,
            )

    return guarded


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 before reading past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgumentError(f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            raise _too_large(limit)
    body = bytearray()
    # A chunked body has no length to check up front: count while streaming.
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body larger than {limit // 1024} KiB",
        hint="send smaller batches (OTLP exporters: lower the max export batch size)",
    )


def _otlp(store: TelemetryStore, decode: Callable[[bytes], list[TelemetryRow]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != PROTOBUF:
            return JSONResponse(
                {"error": f"unsupported content type {content_type!r}; send {PROTOBUF}"},
                status_code=415,
            )
        rows = decode(await read_body(request, MAX_BODY))
        await run_in_threadpool(store.add, rows)
        # An empty Export*ServiceResponse serializes to zero bytes: full success.
        return Response(b"", media_type=PROTOBUF)

    return _json_errors(endpoint)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 / 405 and friends from routing, as JSON like every other answer."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail, "hint": None}, status_code=exc.status_code)


def create_app(store: TelemetryStore) -> Starlette:
    """The ASGI app of the collector, writing into ``store``."""

    async def devices(request: Request) -> Response:
        try:
            data = json.loads(await read_body(request, MAX_DEVICE_BODY))
        except ValueError:
            raise InvalidArgumentError(
                "body is not JSON", hint="send a device message or a list of them"
            ) from None
        messages = data if isinstance(data, list) else [data]
        rows = [row_from_device_message(m) for m in messages if isinstance(m, dict)]
        new = await run_in_threadpool(store.add, rows)
        return JSONResponse({"received": len(rows), "stored": new})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/traces", _otlp(store, rows_from_traces), methods=["POST"]),
            Route("/v1/metrics", _otlp(store, rows_from_metrics), methods=["POST"]),
            Route("/v1/devices", _json_errors(devices), methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
