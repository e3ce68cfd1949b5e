"""OpenTelemetry traces of inference requests, exported by OTLP/HTTP when configured.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set (and ``OTEL_TRACES_EXPORTER`` is not ``none``). When off, the data plane holds
``None`` and opentelemetry is never imported. Spans are written after the request
finished, from the timestamps the scheduler recorded, so the hot path carries no
span objects across threads: ``infer`` with children ``queue`` and ``compute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amlpkg.runtime.batching.types import ScheduledResult

DEFAULT_SERVICE_NAME = "amlpkg-runtime"


def otlp_endpoint(environ: Mapping[str, str], signal: str = "traces") -> str | None:
    """The OTLP/HTTP URL of ``signal`` (``traces``, ``metrics``) the standard ``OTEL_*``
    variables select, or None (off)."""
    exporter = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower()
    if exporter == "none":
        return None
    specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    if specific:
        return specific
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return base.rstrip("/") + f"/v1/{signal}"
    return None


def resource_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    """``service.name`` and the ``k=v,...`` pairs of ``OTEL_RESOURCE_ATTRIBUTES`` of
    ``environ`` (which need not be the process environment the SDK reads)."""
    attrs: dict[str, str] = {}
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            attrs[key.strip()] = value.strip()
    service = environ.get("OTEL_SERVICE_NAME", "").strip()  # wins, as the spec says
    attrs["service.name"] = service or attrs.get("service.name") or DEFAULT_SERVICE_NAME
    return attrs


def traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP traces URL the standard ``OTEL_*`` variables select, or None (off)."""
    return otlp_endpoint(environ, "traces")


class InferTracer:
    """Writes the spans of finished requests through a batching OTLP exporter."""

    def __init__(
        self, endpoint: str, service_name: str, attributes: Mapping[str, str] | None = None
    ) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.endpoint = endpoint
        resource = Resource.create({**(attributes or {}), "service.name": service_name})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self._tracer = self._provider.get_tracer("amlpkg.runtime")
        self._propagator = TraceContextTextMapPropagator()

    def record(
        self,
        *,
        model: str,
        version: str,
        start_ns: int,
        end_ns: int,
        trace_context: Mapping[str, str] | None,
        result: ScheduledResult | None,
        error: BaseException | None,
        request_id: str | None = None,
    ) -> None:
        """Emit ``infer`` (and, when it ran, ``queue`` + ``compute``) for one request."""
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        parent = self._propagator.extract(dict(trace_context)) if trace_context else None
        attrs: dict[str, Any] = {"model": model, "version": version}
        if request_id:
            attrs["request_id"] = request_id
        if result is not None:
            attrs["batch_size"] = result.batch.batch_size
        span = self._tracer.start_span(
            "infer", context=parent, start_time=start_ns, attributes=attrs
        )
        if result is not None:
            ctx = trace.set_span_in_context(span)
            batch = result.batch
            for name, begin, end in (
                ("queue", result.arrival_ns, batch.start_ns),
                ("compute", batch.start_ns, batch.end_ns),
            ):
                child = self._tracer.start_span(
                    name, context=ctx, start_time=begin, attributes=attrs
                )
                child.end(end_time=max(begin, end))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.record_exception(error)
        span.end(end_time=end_ns)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Export every finished span now."""
        self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Flush and stop the exporter."""
        self._provider.shutdown()


def tracer_from_env(environ: Mapping[str, str]) -> InferTracer | None:
    """An :class:`InferTracer` when the ``OTEL_*`` variables ask for one, else None."""
    endpoint = traces_endpoint(environ)
    if endpoint is None:
        return None
    attributes = resource_attributes(environ)
    return InferTracer(endpoint, attributes["service.name"], attributes)
