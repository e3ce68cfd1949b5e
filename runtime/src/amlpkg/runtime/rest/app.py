"""The V2 REST API as one raw ASGI callable.

Routing is a split of the path and a few comparisons (no regex, no framework): the
infer hot path is read body -> decode -> data plane -> encode -> send.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from amlpkg.errors import AmlpkgError, NotFoundError
from amlpkg.runtime.auth import check_credentials
from amlpkg.runtime.codecs.v2_json import HEADER_LENGTH, decode_request, dumps, encode_response
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.faults import public_error
from amlpkg.runtime.limits import check_depth
from amlpkg.runtime.rest.asgi import (
    JSON,
    OCTET_STREAM,
    ClientDisconnectedError,
    Receive,
    Scope,
    Send,
    decompress_body,
    header_map,
    lifespan,
    read_body,
    send_response,
)
from amlpkg.runtime.rest.control import MethodNotAllowedError, handle_control

log = logging.getLogger("amlpkg.runtime.rest")

_HEADER_LENGTH = HEADER_LENGTH.encode()
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_RETRY_AFTER = [(b"retry-after", b"1")]


def error_body(exc: AmlpkgError) -> bytes:
    """The error JSON tritonclient reads: ``{"error": "<message>"}``."""
    return orjson.dumps({"error": str(exc)})


def _error_headers(exc: BaseException, status: int) -> list[tuple[bytes, bytes]] | None:
    if status == 503:  # queue full, shutting down: temporary, tell clients when to retry
        return _RETRY_AFTER
    if isinstance(exc, MethodNotAllowedError):
        return [(b"allow", exc.allow.encode())]
    return None


def _check_auth(headers: dict[bytes, bytes], token: bytes) -> None:
    check_credentials(
        headers.get(b"authorization"), headers.get(b"x-api-key"), token, where="headers"
    )


def _trace_context(headers: dict[bytes, bytes]) -> dict[str, str] | None:
    found = {k.decode(): headers[k].decode("latin-1") for k in _TRACE_HEADERS if k in headers}
    return found or None


class RestApp:
    """ASGI app serving the KServe v2 REST API (with Triton's extensions) for a data plane."""

    def __init__(
        self,
        dataplane: DataPlane,
        *,
        max_request_size: int = 64 * 1024 * 1024,
        auth_token: str | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.max_request_size = max_request_size
        self._token = auth_token.encode() if auth_token else None
        self._registry = metrics_registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = header_map(scope)
        try:
            # ASGI servers give the path already percent-decoded.
            parts = scope["path"].strip("/").split("/")
            if self._token is not None and parts[:2] != ["v2", "health"]:
                _check_auth(headers, self._token)
            if len(parts) >= 4 and parts[1] == "models" and parts[-1] == "infer":
                await self._infer(parts, scope, receive, send, headers)
                return
            status, body, content_type = await self._route(parts, scope, receive, headers)
        except ClientDisconnectedError:
            return
        except Exception as exc:
            # One mapping for every path: the caller's errors say what to fix (paths
            # redacted); anything else is our bug, logged with a trace id.
            public = public_error(exc, self.dataplane.redact)
            await send_response(
                send,
                public.http_status,
                orjson.dumps({"error": public.message}),
                extra_headers=_error_headers(exc, public.http_status),
            )
            return
        await send_response(send, status, body, content_type)

    async def _infer(
        self,
        parts: list[str],
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
    ) -> None:
        # /v2/models/{m}/infer or /v2/models/{m}/versions/{v}/infer
        if (
            parts[0] != "v2"
            or len(parts) not in (4, 6)
            or (len(parts) == 6 and parts[3] != "versions")
        ):
            raise NotFoundError(f"no route for {scope['method']} {scope['path']}")
        if scope["method"] != "POST":
            raise MethodNotAllowedError(
                f"{scope['path']} takes POST, not {scope['method']}", allow="POST"
            )
        version = parts[4] if len(parts) == 6 else None
        raw_length = headers.get(_HEADER_LENGTH)
        header_length = None
        if raw_length is not None:
            try:
                header_length = int(raw_length)
            except ValueError:
                raise InvalidInputError(
                    f"Inference-Header-Content-Length {raw_length.decode('latin-1')!r} "
                    "is not an integer"
                ) from None
        body = await read_body(receive, headers, self.max_request_size)
        # Inference-Header-Content-Length counts the uncompressed JSON.
        body = decompress_body(body, headers.get(b"content-encoding"), self.max_request_size)
        dp = self.dataplane
        args = (body, header_length, parts[2], version)
        limits, shm = dp.limits, dp.shared_memory
        if len(body) >= limits.json_thread_threshold:
            # A big body takes long to parse and convert: keep the loop (health probes,
            # gRPC, small requests) running meanwhile.
            request = await asyncio.to_thread(decode_request, *args, limits=limits, shm=shm)
        else:
            request = decode_request(*args, limits=limits, shm=shm)
        response = await self.dataplane.infer(request, trace_context=_trace_context(headers))
        out, json_length = encode_response(response, request)
        if json_length is None:
            await send_response(send, 200, out)
        else:
            await send_response(
                send,
                200,
                out,
                OCTET_STREAM,
                [(_HEADER_LENGTH, str(json_length).encode())],
            )

    async def _route(
        self, parts: list[str], scope: Scope, receive: Receive, headers: dict[bytes, bytes]
    ) -> tuple[int, bytes, bytes]:
        method = scope["method"]
        if parts == ["metrics"]:
            if method not in ("GET", "HEAD"):
                raise MethodNotAllowedError("/metrics takes GET", allow="GET, HEAD")
            return 200, self.metrics_text(), CONTENT_TYPE_LATEST.encode()
        body: dict[str, Any] = {}
        if method == "POST":
            raw = await read_body(receive, headers, self.max_request_size)
            if raw.strip():
                try:
                    parsed = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise InvalidInputError(f"malformed request JSON: {exc}") from None
                if not isinstance(parsed, dict):
                    raise InvalidInputError("malformed request JSON: the body must be an object")
                check_depth(parsed, self.dataplane.limits.max_json_depth, "the request JSON")
                body = parsed
        status, answer = await handle_control(self.dataplane, parts, method, body, scope["path"])
        return status, answer if isinstance(answer, bytes) else dumps(answer), JSON

    def metrics_text(self) -> bytes:
        """Prometheus text exposition of the data plane's registry."""
        if self._registry is None:
            return b""
        return generate_latest(self._registry)


def metrics_app(registry: CollectorRegistry) -> Any:
    """A tiny ASGI app serving only ``GET /metrics``, for a separate metrics port."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != "/metrics":
            await send_response(send, 404, orjson.dumps({"error": "only /metrics is served here"}))
            return
        await send_response(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST.encode())

    return app
