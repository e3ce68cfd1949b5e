"""Point a deployed runtime's OpenTelemetry exporters at a telemetry collector."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from amlpkg.errors import InvalidArgumentError
from amlpkg.token_file import read_token_file

HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
TOKEN_VAR = "AMLPKG_TELEMETRY_TOKEN"
_SECRET = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+$")


def telemetry_env(
    endpoint: str | None, deployment_id: str, *, token_file: str | Path | None = None
) -> dict[str, str]:
    """Environment for a runtime process or container of ``deployment_id``.

    The standard ``OTEL_*`` variables: the runtime exports its traces by OTLP/HTTP to
    ``endpoint`` (e.g. ``http://127.0.0.1:4318`` of ``amlpkg telemetry serve``), and
    the resource attribute ``amlpkg.deployment`` lets the collector link every span
    to the deployment record (and so to the model version). The runtime also counts
    its output summaries and exports them as OTLP metrics every few seconds, so a
    canary gate can check ``drift`` between any two revisions that report telemetry.
    ``token_file`` (a team server's contributor token) becomes the standard
    ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20TOKEN`` of this environment
    only: it is read here, never recorded. No endpoint, no change.
    """
    if not endpoint:
        if token_file is not None:
            raise InvalidArgumentError(
                "--telemetry-token-file is the token of --telemetry's endpoint",
                hint="add --telemetry URL, or leave the token file out",
            )
        return {}
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.rstrip("/"),
        "OTEL_RESOURCE_ATTRIBUTES": f"amlpkg.deployment={deployment_id}",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",  # ms: telemetry shows up within seconds
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",  # ms: the output summaries' deltas
        "AMLPKG_SERVER_OUTPUT_SUMMARIES": "true",
    }
    if token_file is not None:
        token = read_token_file(Path(token_file), "--telemetry-token-file")
        env[HEADERS] = bearer_header(token)
    return env


def bearer_header(token: str) -> str:
    """``OTEL_EXPORTER_OTLP_HEADERS`` carrying ``token``: the SDK URL-decodes the value."""
    return f"Authorization=Bearer%20{quote(token, safe='')}"


def secret_token_env(secret: str) -> list[dict[str, Any]]:
    """Kubernetes ``env`` entries taking the token from Secret ``NAME/KEY`` (no clear text).

    The token variable comes first: Kubernetes expands ``$(VAR)`` only from earlier entries.
    """
    if not _SECRET.match(secret):
        raise InvalidArgumentError(
            f"--telemetry-token-secret {secret!r} is not NAME/KEY",
            hint="e.g. --telemetry-token-secret amlpkg-telemetry/token"
            " (kubectl create secret generic amlpkg-telemetry --from-file=token=FILE)",
        )
    name, key = secret.split("/", 1)
    ref = {"secretKeyRef": {"name": name, "key": key}}
    return [
        {"name": TOKEN_VAR, "valueFrom": ref},
        {"name": HEADERS, "value": f"Authorization=Bearer%20$({TOKEN_VAR})"},
    ]
