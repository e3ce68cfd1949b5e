"""Generic lineage edges: ``(src_kind, src_id) --relation--> (dst_kind, dst_id)``.

Every stage of the chain (run, model_version, variant, package, deployment,
device) records its arrows here, so the lineage needs no new tables per stage.
Ids are strings: a run id, ``name:version`` for a model version, and so on.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.store.db import Database, write_tx
from amlpkg.store.workspace import Workspace


@dataclass(frozen=True)
class Edge:
    """One recorded arrow of the lineage chain."""

    src_kind: str
    src_id: str
    dst_kind: str
    dst_id: str
    relation: str
    created: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


def add_edge(ws: Workspace, src: tuple[str, str], dst: tuple[str, str], relation: str) -> None:
    """Record ``src --relation--> dst``; recording the same edge twice is a no-op."""
    for part in (*src, *dst, relation):
        if not part:
            raise InvalidArgumentError("lineage edge kinds, ids and relation must be non-empty")
    with write_tx(ws.conn) as conn:
        add_edge_in_tx(conn, src, dst, relation)


def add_edge_in_tx(
    conn: Database, src: tuple[str, str], dst: tuple[str, str], relation: str
) -> None:
    """Like :func:`add_edge`, inside a write transaction the caller holds."""
    conn.execute(
        "INSERT INTO lineage_edges (src_kind, src_id, dst_kind, dst_id, relation, created)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (*src, *dst, relation, time.time()),
    )


def _edges(ws: Workspace, where: str, node: tuple[str, str]) -> list[Edge]:
    rows = ws.conn.execute(
        "SELECT src_kind, src_id, dst_kind, dst_id, relation, created FROM lineage_edges"
        f" WHERE {where} ORDER BY created, id",
        node,
    ).fetchall()
    return [Edge(*row) for row in rows]


def edges_from(ws: Workspace, node: tuple[str, str]) -> list[Edge]:
    """Edges leaving ``(kind, id)``."""
    return _edges(ws, "src_kind = ? AND src_id = ?", node)


def edges_to(ws: Workspace, node: tuple[str, str]) -> list[Edge]:
    """Edges arriving at ``(kind, id)``."""
    return _edges(ws, "dst_kind = ? AND dst_id = ?", node)


def downstream(ws: Workspace, node: tuple[str, str], max_edges: int = 10_000) -> list[Edge]:
    """Every edge reachable from ``node`` going forward (breadth first, cycles ignored)."""
    seen: set[tuple[str, str]] = {node}
    queue = [node]
    found: list[Edge] = []
    while queue and len(found) < max_edges:
        current = queue.pop(0)
        for edge in edges_from(ws, current):
            found.append(edge)
            nxt = (edge.dst_kind, edge.dst_id)
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return found


DESCRIBERS_GROUP = "amlpkg.lineage"


def describe(ws: Workspace, edges: list[dict[str, Any]]) -> None:
    """Set ``edge["detail"]`` on the edges whose stage has something to say.

    Each installed role that owns a stage (variants, packages, deployments,
    devices) announces a describer ``(ws, edges) -> None`` through its
    distribution's ``amlpkg.lineage`` entry point; each is asked in turn.
    """
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=DESCRIBERS_GROUP), key=lambda e: e.name):
        entry.load()(ws, edges)
