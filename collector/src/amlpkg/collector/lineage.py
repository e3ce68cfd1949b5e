"""Key facts of device nodes for ``amlpkg lineage``: what a device serves and reports."""

from __future__ import annotations

import time
from typing import Any

from amlpkg.collector.store import DEVICE_KIND
from amlpkg.store.workspace import Workspace


def describe_device_edges(ws: Workspace, edges: list[dict[str, Any]]) -> None:
    """Set ``edge["detail"]`` on every edge into a device (serving, last seen, totals)."""
    for edge in edges:
        if edge.get("dst_kind") != DEVICE_KIND:
            continue
        device = ws.conn.execute(
            "SELECT module, model_ref, last_seen FROM devices WHERE id = ?", (edge["dst_id"],)
        ).fetchone()
        if device is None:
            continue
        totals = ws.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0)"
            " FROM telemetry WHERE device_id = ?",
            (edge["dst_id"],),
        ).fetchone()
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(device[2])))
        edge["detail"] = (
            f"module {device[0] or '-'}, serving {device[1] or '-'}, last seen {seen}; "
            f"telemetry: {totals[0]} messages, {totals[1]} requests, {totals[2]} errors"
        )
