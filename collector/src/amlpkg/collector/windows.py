"""Device telemetry as windows: one row per message, for gates that compare device groups.

A rollout's gate reads which model each device reported in each window, and the
requests, errors and latency of that window (:mod:`amlpkg.packager.rollout.gate`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from amlpkg.store.workspace import Workspace


@dataclass(frozen=True)
class DeviceWindow:
    """One telemetry message of one device."""

    device_id: str
    model: str | None
    """``name:version`` the device reported serving in this window."""
    received: float
    requests: int
    errors: int
    latency_avg_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    outputs: dict[str, int] | None = None
    """Histogram of the window's output summaries (bin -> count), when the device sent one."""


def device_windows(
    ws: Workspace, since: float, device_ids: Iterable[str] | None = None
) -> list[DeviceWindow]:
    """Windows received at or after ``since`` (of ``device_ids`` only, when given), in order."""
    wanted = None if device_ids is None else set(device_ids)
    rows = ws.conn.execute(
        "SELECT device_id, model_name, model_version, received, requests, errors,"
        " latency_avg_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms, outputs FROM telemetry"
        " WHERE source = 'device' AND device_id IS NOT NULL AND received >= ?"
        " ORDER BY received",
        (since,),
    ).fetchall()
    return [
        DeviceWindow(
            device_id=r[0],
            model=f"{r[1]}:{r[2]}" if r[1] is not None else None,
            received=float(r[3]),
            requests=int(r[4]),
            errors=int(r[5]),
            latency_avg_ms=r[6],
            latency_p50_ms=r[7],
            latency_p95_ms=r[8],
            latency_p99_ms=r[9],
            outputs=json.loads(r[10]) if r[10] else None,
        )
        for r in rows
        if wanted is None or r[0] in wanted
    ]


def deployment_windows(
    ws: Workspace, since: float, deployment_ids: Iterable[str]
) -> list[DeviceWindow]:
    """Windows of any source (devices, runtimes over OTLP) grouped by deployment.

    ``device_id`` of each window holds its deployment id: the key a canary gate
    compares by (``amlpkg.packager.deploy.canary``).
    """
    wanted = set(deployment_ids)
    rows = ws.conn.execute(
        "SELECT deployment_id, model_name, model_version, received, requests, errors,"
        " latency_avg_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms, outputs FROM telemetry"
        " WHERE deployment_id IS NOT NULL AND received >= ? ORDER BY received",
        (since,),
    ).fetchall()
    return [
        DeviceWindow(
            r[0],
            f"{r[1]}:{r[2]}" if r[1] else None,
            float(r[3]),
            int(r[4]),
            int(r[5]),
            r[6],
            r[7],
            r[8],
            r[9],
            json.loads(r[10]) if r[10] else None,
        )
        for r in rows
        if r[0] in wanted
    ]
