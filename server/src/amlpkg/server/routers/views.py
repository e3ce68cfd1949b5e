"""Thin reads the web UI needs: who the caller is, device records, telemetry over time.

Each is a read for readers; the UI hides write controls from a role that may not
use them (:func:`whoami`), and the write routes refuse them anyway.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from amlpkg.collector import devices as device_records
from amlpkg.collector.summary import GROUPS, parse_since
from amlpkg.server.deps import API, READ, Caller, WorkspaceDep
from amlpkg.server.roles import Role
from amlpkg.server.routers.telemetry import Since

router = APIRouter(prefix=API, dependencies=READ)
_SERIES = ("time", "window_s", "requests", "errors", "latency_avg_ms", "latency_p50_ms",
           "latency_p95_ms")  # fmt: skip


class WhoamiOut(BaseModel):
    """The caller's token: its id, name and role (never its secret)."""

    id: str
    name: str
    role: Role
    expires: float | None


class DeviceRecordOut(BaseModel):
    """A device: what it should serve (desired) and what its telemetry reports."""

    id: str
    module: str | None
    deployment_id: str | None
    reported_model: str | None
    first_seen: float
    last_seen: float
    last_telemetry: float | None
    desired_model: str | None
    desired_sha256: str | None
    desired_deployment_id: str | None
    desired_set: float | None
    tags: dict[str, str] = Field(default_factory=dict)
    in_sync: bool | None


class SeriesPointOut(BaseModel):
    """One telemetry message: its time, window, counts and latencies."""

    time: float
    window_s: float | None
    requests: int
    errors: int
    latency_avg_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


@router.get("/whoami", response_model=WhoamiOut, tags=["access"])
def whoami(caller: Caller) -> WhoamiOut:
    """The token this request carries, so a client can show only what its role may do."""
    return WhoamiOut(id=caller.id, name=caller.name, role=caller.role, expires=caller.expires)


@router.get("/device-records", response_model=list[DeviceRecordOut], tags=["devices"])
def list_device_records(ws: WorkspaceDep) -> list[dict[str, Any]]:
    """Every device amlpkg heard of, with its desired and reported model."""
    return [d.to_dict() for d in device_records.list_devices(ws)]


@router.get("/device-records/{device_id}", response_model=DeviceRecordOut, tags=["devices"])
def device_record(device_id: str, ws: WorkspaceDep) -> dict[str, Any]:
    """One device's record."""
    return device_records.get(ws, device_id).to_dict()


@router.get("/telemetry/series", response_model=list[SeriesPointOut], tags=["telemetry"])
def series(
    ws: WorkspaceDep,
    by: Annotated[Literal["deployment", "device"], Query()],
    key: Annotated[str, Query(min_length=1, max_length=250)],
    since: Since = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """The newest ``limit`` telemetry messages of one deployment or device, oldest first."""
    where = [f"{GROUPS[by]} = ?"]  # the column comes from a fixed table, never from input
    params: list[Any] = [key]
    start = parse_since(since)
    if start is not None:
        where.append("received >= ?")
        params.append(start)
    rows = ws.conn.execute(
        # "at", not "time": a type name PostgreSQL would not take as an ORDER BY key.
        f"SELECT COALESCE(produced, received) AS at, {', '.join(_SERIES[1:])} FROM telemetry"
        f" WHERE {' AND '.join(where)} ORDER BY at DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [dict(zip(_SERIES, row, strict=True)) for row in reversed(rows)]
