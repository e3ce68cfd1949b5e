"""Decode OTLP/HTTP protobuf bodies (traces, metrics) into telemetry rows.

Traces: one row per (resource, model, version) of each export request, counting
``infer`` spans, errors and exact latency percentiles of their durations. The row
id is a digest of the span ids, so an exporter's retry of the same batch is stored
once. Metrics: one row per resource of each export, the data points kept in the
body, and one more per (model, version) whose output summaries it carries (the
runtime's delta sum ``amlpkg_output_summary``, validated like a device's histogram),
so a canary's ``drift`` compares deployments as a rollout compares devices. The
deployment is the resource attribute ``amlpkg.deployment`` or else ``service.name``.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, TypeVar

from amlpkg.collector import outputs
from amlpkg.collector.store import TelemetryRow
from amlpkg.errors import InvalidArgumentError

if TYPE_CHECKING:
    from google.protobuf.message import Message

SPAN_NAME = "infer"
OUTPUTS_METRIC = "amlpkg_output_summary"
_STATUS_ERROR = 2
_DELTA = 1  # AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_Message = TypeVar("_Message", bound="Message")


def _attrs(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = getattr(value, kind) if kind else None
    return out


def _deployment(resource_attrs: dict[str, Any]) -> str | None:
    value = resource_attrs.get("amlpkg.deployment") or resource_attrs.get("service.name")
    return None if value is None else str(value)


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _parsed(request: _Message, body: bytes, what: str) -> _Message:
    """``request`` read from the protobuf ``body``; a 400 naming ``what`` when it is not."""
    from google.protobuf.message import DecodeError

    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise InvalidArgumentError(f"OTLP {what} body is not protobuf: {exc}") from None
    return request


def rows_from_traces(body: bytes) -> list[TelemetryRow]:
    """Rows from an ``ExportTraceServiceRequest``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = _parsed(ExportTraceServiceRequest(), body, "traces")
    groups: dict[tuple[str | None, str | None, str | None], list[Any]] = {}
    for resource_spans in request.resource_spans:
        deployment = _deployment(_attrs(resource_spans.resource.attributes))
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                if span.name != SPAN_NAME:
                    continue
                attrs = _attrs(span.attributes)
                key = (deployment, attrs.get("model"), attrs.get("version"))
                groups.setdefault(key, []).append(span)
    rows = []
    for (deployment, model, version), spans in groups.items():
        durations = sorted((s.end_time_unix_nano - s.start_time_unix_nano) / 1e6 for s in spans)
        errors = sum(1 for s in spans if s.status.code == _STATUS_ERROR)
        ids = hashlib.sha256(b"".join(sorted(s.trace_id + s.span_id for s in spans))).hexdigest()
        first = min(s.start_time_unix_nano for s in spans) / 1e9
        last = max(s.end_time_unix_nano for s in spans) / 1e9
        rows.append(
            TelemetryRow(
                message_id=f"otlp-traces:{ids[:32]}",
                source="otlp_traces",
                deployment_id=deployment,
                model_name=None if model is None else str(model),
                model_version=None if version is None else str(version),
                produced=last,
                window_s=max(last - first, 0.0) or None,
                requests=len(spans),
                errors=errors,
                latency_avg_ms=sum(durations) / len(durations),
                latency_p50_ms=_quantile(durations, 0.5),
                latency_p95_ms=_quantile(durations, 0.95),
                latency_p99_ms=_quantile(durations, 0.99),
                body=json.dumps({"spans": len(spans), "trace_digest": ids}),
            )
        )
    return rows


def _points(metric: Any) -> list[dict[str, Any]]:
    kind = metric.WhichOneof("data")
    if kind is None:
        return []
    out = []
    for point in getattr(metric, kind).data_points:
        entry: dict[str, Any] = {"attributes": _attrs(point.attributes)}
        if kind in ("sum", "gauge"):
            entry["value"] = point.as_double if point.HasField("as_double") else point.as_int
        elif kind == "histogram":
            entry.update(count=point.count, sum=point.sum)
        out.append(entry)
    return out


def rows_from_metrics(body: bytes) -> list[TelemetryRow]:
    """Rows from an ``ExportMetricsServiceRequest`` (one per resource)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = _parsed(ExportMetricsServiceRequest(), body, "metrics")
    rows = []
    digest = hashlib.sha256(body).hexdigest()
    for index, resource_metrics in enumerate(request.resource_metrics):
        resource = _attrs(resource_metrics.resource.attributes)
        metrics = {
            metric.name: _points(metric)
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
        }
        message_id = f"otlp-metrics:{digest[:32]}:{index}"
        rows.append(
            TelemetryRow(
                message_id=message_id,
                source="otlp_metrics",
                deployment_id=_deployment(resource),
                body=json.dumps({"resource": resource, "metrics": metrics}, default=str),
            )
        )
        summaries = [
            metric
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
            if metric.name == OUTPUTS_METRIC
        ]
        rows.extend(_output_rows(summaries, _deployment(resource), message_id))
    return rows


def _output_rows(metrics: list[Any], deployment: str | None, message_id: str) -> list[TelemetryRow]:
    """One row per (model, version) of the delta output summaries in ``metrics``."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for metric in metrics:
        if metric.WhichOneof("data") != "sum" or metric.sum.aggregation_temporality != _DELTA:
            continue  # cumulative sums cannot be told apart from restarts: kept in the body
        for point in metric.sum.data_points:
            attrs = _attrs(point.attributes)
            value: Any = point.as_double if point.HasField("as_double") else point.as_int
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            key = (str(attrs.get("model", "")), str(attrs.get("version", "")))
            bins = groups.setdefault(key, {})
            bin_key = str(attrs.get("bin", ""))
            bins[bin_key] = value + bins.get(bin_key, 0)
    rows = []
    for n, ((model, version), raw) in enumerate(sorted(groups.items())):
        histogram = outputs.validate(raw)
        if not histogram or not model:
            continue
        rows.append(
            TelemetryRow(
                message_id=f"{message_id}:outputs:{n}",
                source="otlp_metrics",
                deployment_id=deployment,
                model_name=model,
                model_version=version or None,
                body=json.dumps({"outputs_of": f"{model}:{version}"}),
                outputs=json.dumps(histogram, sort_keys=True),
            )
        )
    return rows
