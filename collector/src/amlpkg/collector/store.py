"""Telemetry rows in the workspace: insert once per message id, link devices into the lineage.

Rows come from three sources: device messages (the edge agent's outbox, through
the MQTT bridge or the JSON ingest endpoint), and OTLP traces and metrics from
runtimes. A duplicate message id is ignored, so at-least-once delivery stores
each message exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from amlpkg.collector import devices, outputs
from amlpkg.errors import InvalidArgumentError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace

DEVICE_KIND = devices.DEVICE_KIND
DEPLOYMENT_KIND = devices.DEPLOYMENT_KIND
MODEL_VERSION_KIND = "model_version"


@dataclass(frozen=True)
class TelemetryRow:
    """One telemetry record, ready to store."""

    message_id: str
    source: str
    device_id: str | None = None
    deployment_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    seq: int | None = None
    produced: float | None = None
    window_s: float | None = None
    requests: int = 0
    errors: int = 0
    latency_avg_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    body: str = "{}"
    outputs: str | None = None
    """The window's output histogram (validated JSON, see :mod:`.outputs`)."""


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def row_from_device_message(body: dict[str, Any], module: str | None = None) -> TelemetryRow:
    """Validate an edge agent message (see :mod:`amlpkg.edge_agent.sampler`) as a row."""
    message_id = body.get("message_id")
    device = body.get("device")
    if not isinstance(message_id, str) or not message_id or not isinstance(device, str):
        raise InvalidArgumentError(
            "device telemetry needs string 'message_id' and 'device' fields",
            hint="send messages produced by amlpkg-edge-agent (its outbox sets both)",
        )
    histogram = outputs.validate(body.get("outputs"))
    if histogram is not None:
        body = {**body, "outputs": histogram}
    try:
        return TelemetryRow(
            message_id=message_id,
            source="device",
            device_id=device,
            deployment_id=body.get("deployment"),
            model_name=body.get("model"),
            model_version=None if body.get("version") is None else str(body["version"]),
            seq=None if body.get("seq") is None else int(body["seq"]),
            produced=_num(body.get("time")),
            window_s=_num(body.get("window_s")),
            requests=int(body.get("requests") or 0),
            errors=int(body.get("errors") or 0),
            latency_avg_ms=_num(body.get("latency_avg_ms")),
            latency_p50_ms=_num(body.get("compute_p50_ms")),
            latency_p95_ms=_num(body.get("compute_p95_ms")),
            latency_p99_ms=_num(body.get("compute_p99_ms")),
            body=json.dumps({**body, "module": body.get("module", module)}, sort_keys=True),
            outputs=None if histogram is None else json.dumps(histogram, sort_keys=True),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"device telemetry {message_id} is malformed: {exc}") from None


class TelemetryStore:
    """Writes telemetry rows through one workspace connection (thread-safe)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()

    def add(self, rows: list[TelemetryRow]) -> int:
        """Store the rows not seen before; return how many were new."""
        if not rows:
            return 0
        now = time.time()
        new = 0
        with self._lock, write_tx(self.ws.conn) as conn:
            for row in rows:
                cur = conn.execute(
                    "INSERT INTO telemetry (message_id, source, device_id, deployment_id,"
                    " model_name, model_version, seq, produced, received, window_s, requests,"
                    " errors, latency_avg_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms,"
                    " body, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (message_id) DO NOTHING",
                    (
                        row.message_id,
                        row.source,
                        row.device_id,
                        row.deployment_id,
                        row.model_name,
                        row.model_version,
                        row.seq,
                        row.produced,
                        now,
                        row.window_s,
                        row.requests,
                        row.errors,
                        row.latency_avg_ms,
                        row.latency_p50_ms,
                        row.latency_p95_ms,
                        row.latency_p99_ms,
                        row.body,
                        row.outputs,
                    ),
                )
                if cur.rowcount == 0:
                    continue
                new += 1
                if row.device_id is not None:
                    self._touch_device(conn, row, now)
        return new

    def _touch_device(self, conn: Any, row: TelemetryRow, now: float) -> None:
        model_ref = f"{row.model_name}:{row.model_version}" if row.model_name else None
        devices.touch_in_tx(
            conn,
            str(row.device_id),
            module=json.loads(row.body).get("module"),
            deployment_id=row.deployment_id,
            reported_model=model_ref,
            now=now,
        )
        device = (DEVICE_KIND, str(row.device_id))
        # device -> deployment -> model version, as the lineage reads it forwards
        if row.deployment_id:
            add_edge_in_tx(conn, (DEPLOYMENT_KIND, row.deployment_id), device, "runs_on")
        elif model_ref:
            add_edge_in_tx(conn, (MODEL_VERSION_KIND, model_ref), device, "served_on")
