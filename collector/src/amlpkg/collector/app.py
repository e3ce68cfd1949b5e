"""The collector's HTTP side: OTLP/HTTP ``/v1/traces`` and ``/v1/metrics`` (protobuf) and
``/v1/devices`` (JSON device messages, for standalone agents without an MQTT broker)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from amlpkg.collector.otlp import rows_from_metrics, rows_from_traces
from amlpkg.collector.store import TelemetryRow, TelemetryStore, row_from_device_message
from amlpkg.errors import AmlpkgError

log = logging.getLogger(__name__)
PROTOBUF = "application/x-protobuf"
MAX_BODY = 16 * 1024 * 1024


def _error(exc: AmlpkgError) -> JSONResponse:
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.http_status)


def _otlp(
    store: TelemetryStore, decode: Callable[[bytes], list[TelemetryRow]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != PROTOBUF:
            return JSONResponse(
                {"error": f"unsupported content type {content_type!r}; send {PROTOBUF}"},
                status_code=415,
            )
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "OTLP export larger than 16 MiB"}, status_code=413)
        try:
            rows = decode(body)
            await run_in_threadpool(store.add, rows)
        except AmlpkgError as exc:
            return _error(exc)
        # An empty Export*ServiceResponse serializes to zero bytes: full success.
        return Response(b"", media_type=PROTOBUF)

    return endpoint


def create_app(store: TelemetryStore) -> Starlette:
    """The ASGI app of the collector, writing into ``store``."""

    async def devices(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        messages = data if isinstance(data, list) else [data]
        try:
            rows = [row_from_device_message(m) for m in messages if isinstance(m, dict)]
            new = await run_in_threadpool(store.add, rows)
        except AmlpkgError as exc:
            return _error(exc)
        return JSONResponse({"received": len(rows), "stored": new})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/traces", _otlp(store, rows_from_traces), methods=["POST"]),
            Route("/v1/metrics", _otlp(store, rows_from_metrics), methods=["POST"]),
            Route("/v1/devices", devices, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
