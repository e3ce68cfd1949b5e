"""OTLP/HTTP export of the output summaries, so a collector gates deployments on drift.

On when summaries are counted and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``) is set and ``OTEL_METRICS_EXPORTER`` is not
``none``: every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60000) the SDK's periodic
reader sends ``amlpkg_output_summary`` as a monotonic sum with **delta** temporality,
one data point per ``(model, version, bin)`` that moved, read from the Prometheus
counter (nothing more on the request path). The resource carries
``OTEL_RESOURCE_ATTRIBUTES`` (``amlpkg.deployment=ID`` on a deployed runtime), so the
collector stores the histogram per deployment and version. Each worker process
exports its own deltas; the collector sums them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from amlpkg.runtime.summaries import METRIC
from amlpkg.runtime.tracing import otlp_endpoint, resource_attributes

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

    from amlpkg.runtime.summaries import OutputSummaries

DEFAULT_INTERVAL_MS = 60_000


def _interval_ms(environ: Mapping[str, str]) -> float:
    text = environ.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    try:
        value = float(text) if text else DEFAULT_INTERVAL_MS
    except ValueError:
        value = DEFAULT_INTERVAL_MS
    return value if value > 0 else DEFAULT_INTERVAL_MS


class SummaryExport:
    """A meter provider whose one observable counter reads the summaries' counter."""

    def __init__(
        self, summaries: OutputSummaries, endpoint: str, environ: Mapping[str, str]
    ) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import Resource

        self.endpoint = endpoint
        self._summaries = summaries
        exporter = OTLPMetricExporter(
            endpoint=endpoint,
            preferred_temporality={ObservableCounter: AggregationTemporality.DELTA},
        )
        reader = PeriodicExportingMetricReader(
            exporter, export_interval_millis=_interval_ms(environ)
        )
        self._provider = MeterProvider(
            resource=Resource.create(resource_attributes(environ)), metric_readers=[reader]
        )
        self._provider.get_meter("amlpkg.runtime").create_observable_counter(
            METRIC,
            callbacks=[self._observe],
            description="Responses' output summaries by fixed bin.",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        for (model, version, key), value in self._summaries.values().items():
            yield Observation(value, {"model": model, "version": version, "bin": key})

    def flush(self, timeout_s: float = 5.0) -> None:
        """Export what was counted since the last export now."""
        self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Export the last deltas and stop."""
        self._provider.shutdown()


def export_from_env(summaries: OutputSummaries, environ: Mapping[str, str]) -> SummaryExport | None:
    """A running :class:`SummaryExport` when the ``OTEL_*`` variables ask for one."""
    endpoint = otlp_endpoint(environ, "metrics")
    return None if endpoint is None else SummaryExport(summaries, endpoint, environ)
