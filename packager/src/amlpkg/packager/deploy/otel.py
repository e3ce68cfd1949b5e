"""Point a deployed runtime's OpenTelemetry exporters at a telemetry collector."""

from __future__ import annotations


def telemetry_env(endpoint: str | None, deployment_id: str) -> dict[str, str]:
    """Environment for a runtime process or container of ``deployment_id``.

    The standard ``OTEL_*`` variables: the runtime exports its traces by OTLP/HTTP to
    ``endpoint`` (e.g. ``http://127.0.0.1:4318`` of ``amlpkg telemetry serve``), and
    the resource attribute ``amlpkg.deployment`` lets the collector link every span
    to the deployment record (and so to the model version). The runtime also counts
    its output summaries and exports them as OTLP metrics every few seconds, so a
    canary gate can check ``drift`` between any two revisions that report telemetry.
    No endpoint, no change.
    """
    if not endpoint:
        return {}
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.rstrip("/"),
        "OTEL_RESOURCE_ATTRIBUTES": f"amlpkg.deployment={deployment_id}",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",  # ms: telemetry shows up within seconds
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",  # ms: the output summaries' deltas
        "AMLPKG_SERVER_OUTPUT_SUMMARIES": "true",
    }
