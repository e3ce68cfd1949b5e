"""The audit log: one row for every change made through the server (who, what, when)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from amlpkg.store.db import write_tx
from amlpkg.store.workspace import Workspace


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change."""

    id: int
    time: float
    actor: str
    role: str | None
    action: str
    target: str | None
    detail: dict[str, Any]


def record(
    ws: Workspace,
    *,
    actor: str,
    role: str | None,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry. ``actor`` is ``token:<id>`` (or ``cli:user@host``)."""
    with write_tx(ws.conn) as conn:
        conn.execute(
            "INSERT INTO server_audit (time, actor, role, action, target, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), actor, role, action, target, json.dumps(detail or {}, sort_keys=True)),
        )


def entries(
    ws: Workspace, *, since: float | None = None, limit: int = 100, actor: str | None = None
) -> list[AuditEntry]:
    """The newest entries first, optionally since a time and of one actor."""
    clauses: list[str] = []
    args: list[object] = []
    if since is not None:
        clauses.append("time >= ?")
        args.append(since)
    if actor is not None:
        clauses.append("actor = ?")
        args.append(actor)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = ws.conn.execute(
        "SELECT id, time, actor, role, action, target, detail FROM server_audit"
        f"{where} ORDER BY id DESC LIMIT ?",
        (*args, int(limit)),
    ).fetchall()
    return [
        AuditEntry(
            id=int(r["id"]),
            time=float(r["time"]),
            actor=r["actor"],
            role=r["role"],
            action=r["action"],
            target=r["target"],
            detail=json.loads(r["detail"]),
        )
        for r in rows
    ]
