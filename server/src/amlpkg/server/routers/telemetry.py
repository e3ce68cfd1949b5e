"""Telemetry: summaries per deployment and per device, and the OTLP receiver.

The receiver is the collector's own app (``amlpkg.collector.app.create_app``),
reached through routes of this app so it sits behind the same token check:
runtimes send ``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer <token>``.
Telemetry is data, not a change to the workspace: it is not written to the
audit log (one row per export would drown the changes people look for).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amlpkg.collector.summary import parse_since, summarize
from amlpkg.errors import NotFoundError
from amlpkg.server.deps import API, READ, WorkspaceDep, require
from amlpkg.server.roles import Role

router = APIRouter(prefix=API, tags=["telemetry"], dependencies=READ)
Since = Annotated[
    str | None,
    Query(
        max_length=32,
        pattern=r"^\d{1,10}(\.\d{1,6})?[smhd]?$",
        description="30s, 2h, 1d or a Unix time",
    ),
]
Key = Annotated[str | None, Query(max_length=250)]


class SummaryOut(BaseModel):
    """Totals of one deployment or device over the selected window."""

    key: str
    messages: int
    requests: int
    errors: int
    error_rate: float
    throughput_rps: float | None
    latency_avg_ms: float | None
    latency_p95_ms: float | None
    first: float
    last: float
    models: list[str]


@router.get("/telemetry/deployments", response_model=list[SummaryOut])
def per_deployment(ws: WorkspaceDep, since: Since = None, deployment: Key = None) -> list[Any]:
    """Latency, throughput and errors per deployment."""
    found = summarize(ws, by="deployment", key=deployment, since=parse_since(since))
    return [s.to_dict() for s in found]


@router.get("/devices", response_model=list[SummaryOut], tags=["devices"])
def devices(ws: WorkspaceDep, since: Since = None) -> list[Any]:
    """Every device that reported: what it serves, when it was last seen, its totals."""
    return [s.to_dict() for s in summarize(ws, by="device", since=parse_since(since))]


@router.get("/devices/{device}", response_model=SummaryOut, tags=["devices"])
def device(device: str, ws: WorkspaceDep, since: Since = None) -> Any:
    """One device's totals."""
    found = summarize(ws, by="device", key=device, since=parse_since(since))
    if not found:
        raise NotFoundError(f"no telemetry from device {device!r}")
    return found[0].to_dict()


class Delegate(Response):
    """Hands the request, body unread, to another ASGI app (the collector)."""

    def __init__(self, app: ASGIApp, body: bytes | None = None) -> None:
        super().__init__()
        self.app = app
        self.read = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.read is None:
            await self.app(scope, receive, send)
            return
        body = self.read

        async def replay() -> Message:  # the body was read (and checked) already
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @classmethod
    def bounded(cls, app: ASGIApp, limit: int) -> ASGIApp:
        """``app`` refusing bodies over ``limit`` bytes with 413 before they are all read."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            seen = 0

            async def counted() -> Message:
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
                return message

            declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
            if not declared.isdigit() or int(declared) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            try:
                await app(scope, counted, send)
            except _TooLarge:
                # The collector reads the whole body before it answers: nothing was sent yet.
                await _too_large(limit)(scope, receive, send)

        return guarded


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> ASGIApp:
    body = {"error": f"telemetry bodies are limited to {limit} bytes", "code": "payload_too_large"}
    return JSONResponse(body, status_code=413)


PROTOBUF = "application/x-protobuf"


class DeviceMessage(BaseModel):
    """An edge agent's telemetry message; fields the agent adds are kept as they come."""

    model_config = ConfigDict(extra="allow")

    message_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    device: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    module: Annotated[str, StringConstraints(max_length=200)] | None = None
    deployment: Annotated[str, StringConstraints(max_length=200)] | None = None
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    version: Annotated[str, StringConstraints(max_length=50)] | int | None = None
    seq: int | None = Field(default=None, ge=0, le=2**62)
    time: float | None = Field(default=None, allow_inf_nan=False)
    window_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    requests: int | None = Field(default=None, ge=0, le=2**62)
    errors: int | None = Field(default=None, ge=0, le=2**62)
    latency_avg_ms: float | None = Field(default=None, allow_inf_nan=False)
    compute_p50_ms: float | None = Field(default=None, allow_inf_nan=False)
    compute_p95_ms: float | None = Field(default=None, allow_inf_nan=False)
    compute_p99_ms: float | None = Field(default=None, allow_inf_nan=False)


DeviceMessages = DeviceMessage | Annotated[list[DeviceMessage], Field(max_length=1000)]


_BINARY = {"type": "string", "format": "binary"}
_RECEIVERS = {
    "/v1/traces": ("OTLP/HTTP ExportTraceServiceRequest (protobuf).", PROTOBUF, _BINARY),
    "/v1/metrics": ("OTLP/HTTP ExportMetricsServiceRequest (protobuf).", PROTOBUF, _BINARY),
}


def receiver_router(collector: ASGIApp, limit: int) -> APIRouter:
    """Routes passing OTLP and device telemetry to the collector's app, for contributors."""
    guarded = Delegate.bounded(collector, limit)
    receivers = APIRouter(tags=["telemetry"], dependencies=[Depends(require(Role.contributor))])
    for path, (summary, media, schema) in _RECEIVERS.items():

        async def forward() -> Response:
            return Delegate(guarded)

        body = {"required": True, "content": {media: {"schema": schema}}}
        receivers.add_api_route(
            path,
            forward,
            methods=["POST"],
            summary=summary,
            response_class=Response,
            operation_id=f"receive_{path.rsplit('/', 1)[1]}",
            openapi_extra={"requestBody": body},
        )

    # Device messages are checked here first: the collector stores what it is given.
    @receivers.post("/v1/devices", response_class=Response, operation_id="receive_devices")
    async def devices(messages: DeviceMessages, request: Request) -> Response:
        """Edge agent messages (JSON), for devices without an MQTT broker."""
        return Delegate(guarded, body=await request.body())

    return receivers
