"""Device nodes in the lineage: their key facts for ``amlpkg lineage`` and the view
``amlpkg lineage device:ID`` (what a device runs, why, and what is behind it)."""

from __future__ import annotations

import time
from typing import Any

from amlpkg.collector.devices import Device, get
from amlpkg.collector.store import DEVICE_KIND
from amlpkg.store.lineage_edges import Edge, describe, edges_to
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


def upstream(ws: Workspace, node: tuple[str, str], max_edges: int = 1_000) -> list[Edge]:
    """Every edge that leads to ``node`` going backwards (breadth first, cycles ignored)."""
    seen = {node}
    queue = [node]
    found: list[Edge] = []
    while queue and len(found) < max_edges:
        for edge in edges_to(ws, queue.pop(0)):
            found.append(edge)
            source = (edge.src_kind, edge.src_id)
            if source not in seen:
                seen.add(source)
                queue.append(source)
    return found[:max_edges]


def _because(device: Device, edges: list[dict[str, Any]]) -> str | None:
    """Why the device has its desired model, from the newest rollout edge into it."""
    mine = [
        e
        for e in edges
        if e["dst_kind"] == DEVICE_KIND and e["dst_id"] == device.id and e.get("rollout")
    ]
    if not mine:
        return None
    edge = max(mine, key=lambda e: e["created"])
    info = edge["rollout"]
    stage = f"rollout {info['id']} stage {info['stage']} ({info['percent']:g}%)"
    if edge["relation"] == "rolled_back":
        back = info.get("previous") or "its previous desired state"
        return f"back on {back} because {stage} with {info['model']} was rolled back"
    verb = "runs" if device.reported_model == info["model"] else "should run"
    return f"{verb} {info['model']} because of {stage}"


def device_lineage(ws: Workspace, device_id: str) -> dict[str, Any]:
    """``amlpkg lineage device:ID``: the device, why it runs what it runs, and every edge
    behind it (rollout stages, deployments, model versions, runs), described."""
    device = get(ws, device_id)
    edges = [e.to_dict() for e in upstream(ws, (DEVICE_KIND, device_id))]
    describe(ws, edges)
    return {"device": device.to_dict(), "because": _because(device, edges), "upstream": edges}
