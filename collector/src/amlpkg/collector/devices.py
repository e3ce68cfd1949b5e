"""Devices as records: seen, desired model, reported model, last telemetry.

A device row appears when amlpkg first hears of it: its telemetry (the collector),
or a deploy that names it (``--target iotedge --device-id``) or a call of
:func:`set_desired`. Telemetry fills what the device reports (model, module, the
deployment it runs under); a deploy fills what it should run (model ``name:version``
and sha256). Lineage links ``deployment -> device`` both ways: ``deployed_to`` when
a deploy names the device, ``runs_on`` when the device reports under a deployment.

This module imports only the core: the packager records desired models through it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace

DEVICE_KIND = "device"
DEPLOYMENT_KIND = "deployment"
_COLUMNS = (
    "id, module, deployment_id, model_ref, first_seen, last_seen, last_telemetry,"
    " desired_model, desired_sha256, desired_deployment_id, desired_set, tags"
)
MAX_TAGS = 64
MAX_TAG_VALUE = 256
_TAG_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Device:
    """One device: what it should serve, what it reports serving, when it was heard of."""

    id: str
    module: str | None
    deployment_id: str | None
    """The deployment the device last reported running under."""
    reported_model: str | None
    """``name:version`` the device's telemetry names."""
    first_seen: float
    last_seen: float
    last_telemetry: float | None
    desired_model: str | None
    desired_sha256: str | None
    desired_deployment_id: str | None
    desired_set: float | None
    tags: dict[str, str] = field(default_factory=dict)
    """Tags the service side gave the device (IoT Hub twin tags, flattened with dots)."""

    @property
    def in_sync(self) -> bool | None:
        """Whether it reports the desired model (None when either is unknown)."""
        if self.desired_model is None or self.reported_model is None:
            return None
        return self.desired_model == self.reported_model

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``devices show --json``)."""
        return {**asdict(self), "in_sync": self.in_sync}


def _device(row: Any) -> Device:
    values = list(row)
    return replace(Device(*values[:-1]), tags=json.loads(values[-1]) if values[-1] else {})


def flatten_tags(tags: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """IoT Hub twin tags (nested JSON) as ``a.b -> "value"``; None values are kept as None."""
    flat: dict[str, Any] = {}
    for key, value in tags.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_tags(value, f"{name}."))
        else:
            flat[name] = None if value is None else str(value)
    return flat


def set_tags(
    ws: Workspace, device_id: str, patch: dict[str, Any], *, replace: bool = False
) -> Device:
    """Merge ``patch`` into the device's tags (a None value removes a tag), as a twin
    tags patch does; ``replace``: the tags become ``patch`` exactly. Creates the record."""
    if not device_id:
        raise InvalidArgumentError("tags need a device id")
    flat = flatten_tags(patch)
    for key, value in flat.items():
        if not _TAG_KEY.match(key):
            raise InvalidArgumentError(
                f"tag name {key[:70]!r} is not NAME", hint="letters, digits, _ . - (at most 64)"
            )
        if value is not None and len(value) > MAX_TAG_VALUE:
            raise InvalidArgumentError(f"tag {key} is longer than {MAX_TAG_VALUE} characters")
    now = time.time()
    with write_tx(ws.conn) as conn:
        row = conn.execute("SELECT tags FROM devices WHERE id = ?", (device_id,)).fetchone()
        tags: dict[str, str] = {} if replace or row is None or not row[0] else json.loads(row[0])
        for key, value in flat.items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value
        if len(tags) > MAX_TAGS:
            raise InvalidArgumentError(f"device {device_id} would have more than {MAX_TAGS} tags")
        conn.execute(
            "INSERT INTO devices (id, first_seen, last_seen, tags) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET tags = excluded.tags",
            (device_id, now, now, json.dumps(tags, sort_keys=True)),
        )
    return get(ws, device_id)


def set_desired(
    ws: Workspace,
    device_id: str,
    model: str,
    sha256: str | None = None,
    *,
    deployment_id: str | None = None,
) -> Device:
    """Record that ``device_id`` should serve ``model`` (``name:version``), e.g. after a deploy."""
    if not device_id or ":" not in model:
        raise InvalidArgumentError(
            f"a desired model needs a device id and NAME:VERSION, got {device_id!r}, {model!r}"
        )
    now = time.time()
    with write_tx(ws.conn) as conn:
        conn.execute(
            "INSERT INTO devices (id, first_seen, last_seen, desired_model, desired_sha256,"
            " desired_deployment_id, desired_set) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,"
            " desired_model = excluded.desired_model, desired_sha256 = excluded.desired_sha256,"
            " desired_deployment_id = excluded.desired_deployment_id,"
            " desired_set = excluded.desired_set",
            (device_id, now, now, model, sha256, deployment_id, now),
        )
        if deployment_id:
            device = (DEVICE_KIND, device_id)
            add_edge_in_tx(conn, (DEPLOYMENT_KIND, deployment_id), device, "deployed_to")
    return get(ws, device_id)


def touch_in_tx(
    conn: Any,
    device_id: str,
    *,
    module: str | None,
    deployment_id: str | None,
    reported_model: str | None,
    now: float,
) -> None:
    """Record telemetry from ``device_id`` inside the caller's write transaction."""
    conn.execute(
        "INSERT INTO devices (id, module, deployment_id, model_ref, first_seen, last_seen,"
        " last_telemetry) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
        " module = COALESCE(excluded.module, devices.module),"
        " deployment_id = COALESCE(excluded.deployment_id, devices.deployment_id),"
        " model_ref = COALESCE(excluded.model_ref, devices.model_ref),"
        " last_seen = excluded.last_seen, last_telemetry = excluded.last_telemetry",
        (device_id, module, deployment_id, reported_model, now, now, now),
    )


def get(ws: Workspace, device_id: str) -> Device:
    """The device called ``device_id``."""
    row = ws.conn.execute(f"SELECT {_COLUMNS} FROM devices WHERE id = ?", (device_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no device {device_id!r}", hint="see `amlpkg devices list`")
    return _device(row)


def list_devices(ws: Workspace) -> list[Device]:
    """Every device amlpkg heard of, by id."""
    rows = ws.conn.execute(f"SELECT {_COLUMNS} FROM devices ORDER BY id").fetchall()
    return [_device(row) for row in rows]
