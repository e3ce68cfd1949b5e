"""Reads and writes the roles' libraries do not offer yet (experiments).

Kept apart and small on purpose: each belongs in the role that owns the table
(``amlpkg.trainer.store``) and moves there; the server then calls it.
"""

from __future__ import annotations

import time

from amlpkg.errors import AlreadyExistsError, NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.workspace import Workspace

_EXPERIMENTS = (
    "SELECT e.name, e.created, COUNT(r.id) AS runs FROM experiments e"
    " LEFT JOIN runs r ON r.experiment_id = e.id"
)


def list_experiments(ws: Workspace) -> list[dict[str, object]]:
    """Every experiment with its run count, by name."""
    rows = ws.conn.execute(_EXPERIMENTS + " GROUP BY e.id ORDER BY e.name").fetchall()
    return [dict(r) for r in rows]


def get_experiment(ws: Workspace, name: str) -> dict[str, object]:
    """One experiment with its run count."""
    row = ws.conn.execute(_EXPERIMENTS + " WHERE e.name = ? GROUP BY e.id", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"no experiment {name!r}")
    return dict(row)


def create_experiment(ws: Workspace, name: str) -> dict[str, object]:
    """Make an empty experiment (runs also make theirs on first use)."""
    with write_tx(ws.conn) as conn:
        cur = conn.execute(
            "INSERT INTO experiments (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (name, time.time()),
        )
        if cur.rowcount == 0:
            raise AlreadyExistsError(f"experiment {name!r} exists already")
    return get_experiment(ws, name)
