"""Where runtimes and devices send telemetry when a team server is configured.

The team server runs the collector's receiver itself (``/v1/traces``, ``/v1/metrics``,
``/v1/devices``, behind its token check), so ``amlpkg telemetry serve`` starts nothing
against a server: it says where to point runtimes and devices instead. The server
bridges no MQTT broker; a broker's devices are collected by ``telemetry serve`` on a
local workspace.
"""

from __future__ import annotations

from amlpkg.errors import FailedPreconditionError

TOKEN_HEADER = "authorization=Bearer%20<contributor token>"


def server_receivers(url: str, mqtt_host: str | None = None) -> list[str]:
    """The lines ``telemetry serve`` prints for the team server at ``url`` (no token in them).

    ``mqtt_host`` (a broker to bridge) is refused: the server does not subscribe to one.
    """
    if mqtt_host is not None:
        raise FailedPreconditionError(
            f"the team server ({url}) receives device telemetry over HTTP ({url}/v1/devices);"
            " it bridges no MQTT broker",
            hint="send device telemetry to that URL with a contributor token, or run the bridge"
            " beside the server on the team's store: AMLPKG_STORE=<the server's store URL>"
            " AMLPKG_ARTIFACTS=<its artifacts URL> amlpkg telemetry serve --mqtt-host ...",
        )
    return [
        f"the team server {url} receives telemetry itself; nothing to start here",
        f"runtimes: OTEL_EXPORTER_OTLP_ENDPOINT={url} OTEL_EXPORTER_OTLP_HEADERS={TOKEN_HEADER}",
        f"  OTLP/HTTP: {url}/v1/traces, {url}/v1/metrics (protobuf)",
        f"devices: POST {url}/v1/devices (edge agent JSON messages), header"
        " Authorization: Bearer <contributor token>",
        "summaries: amlpkg telemetry show (and devices list) read them back",
    ]
