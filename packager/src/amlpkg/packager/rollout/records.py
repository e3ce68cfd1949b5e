"""Rollout rows in the workspace: the plan, where the driver is, and each device's part.

Every change of a rollout's position (stage, phase) is one write transaction, so
a driver killed at any point leaves a row a new driver continues from. Lineage:
``model_version --rolled_out--> rollout --staged--> device`` when a stage takes a
device, and ``rollout --rolled_back--> device`` when a failed gate or an abort puts
its previous model back; the describer (entry point ``amlpkg.lineage``) says which
model and stage each edge stands for, in words (``detail``) and as data (``rollout``).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from amlpkg.errors import FailedPreconditionError, NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace

ROLLOUT_KIND = "rollout"
DEVICE_KIND = "device"
MODEL_VERSION_KIND = "model_version"
TERMINAL = ("succeeded", "failed", "aborted")
_COLUMNS = (
    "id, model, fleet, stages, gate, soak_s, quorum, max_wait_s, target, options, state,"
    " stage, phase, applied_at, baseline, result, reason, created, updated"
)


@dataclass
class Rollout:
    """One rollout: its plan and how far it got."""

    id: str
    model: str
    fleet: str
    stages: list[float]
    gate: str
    soak_s: float
    quorum: float
    max_wait_s: float
    target: str
    options: dict[str, Any]
    state: str
    stage: int
    """Index into ``stages`` of the stage being applied or soaked."""
    phase: str
    """``apply`` (cohort not written yet), ``soak`` (waiting for the gate) or ``done``."""
    applied_at: float | None
    baseline: dict[str, Any] | None
    """The control group's metrics at the last gate (used when no control is left)."""
    result: list[dict[str, Any]] = field(default_factory=list)
    """One gate evaluation per stage decided so far."""
    reason: str | None = None
    created: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


@dataclass(frozen=True)
class RolloutDevice:
    """A device the rollout put the new model on, at which stage, and what it had before."""

    device_id: str
    stage: int
    previous: dict[str, Any]
    status: str
    applied_at: float


def _rollout(row: Any) -> Rollout:
    return Rollout(
        id=row["id"],
        model=row["model"],
        fleet=row["fleet"],
        stages=json.loads(row["stages"]),
        gate=row["gate"],
        soak_s=float(row["soak_s"]),
        quorum=float(row["quorum"]),
        max_wait_s=float(row["max_wait_s"]),
        target=row["target"],
        options=json.loads(row["options"]),
        state=row["state"],
        stage=int(row["stage"]),
        phase=row["phase"],
        applied_at=row["applied_at"],
        baseline=json.loads(row["baseline"]) if row["baseline"] else None,
        result=json.loads(row["result"]),
        reason=row["reason"],
        created=float(row["created"]),
        updated=float(row["updated"]),
    )


def create(
    ws: Workspace,
    *,
    model: str,
    fleet: str,
    stages: list[float],
    gate: str,
    soak_s: float,
    quorum: float,
    max_wait_s: float,
    target: str,
    options: dict[str, Any],
) -> Rollout:
    """Record a new rollout (state ``running``, stage 0 to apply)."""
    rollout_id = f"ro-{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}"
    now = time.time()
    with write_tx(ws.conn) as conn:
        conn.execute(
            f"INSERT INTO rollouts ({_COLUMNS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rollout_id, model, fleet, json.dumps(stages), gate, soak_s, quorum, max_wait_s,
             target, json.dumps(options), "running", 0, "apply", None, None, "[]", None,
             now, now),
        )  # fmt: skip
        add_edge_in_tx(conn, (MODEL_VERSION_KIND, model), (ROLLOUT_KIND, rollout_id), "rolled_out")
    return get(ws, rollout_id)


def get(ws: Workspace, rollout_id: str) -> Rollout:
    """The rollout called ``rollout_id``."""
    row = ws.conn.execute(f"SELECT {_COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no rollout {rollout_id!r}", hint="see `amlpkg rollout list`")
    return _rollout(row)


def list_rollouts(ws: Workspace) -> list[Rollout]:
    """Every rollout, newest first."""
    rows = ws.conn.execute(f"SELECT {_COLUMNS} FROM rollouts ORDER BY created DESC").fetchall()
    return [_rollout(r) for r in rows]


def update(ws: Workspace, rollout_id: str, **values: Any) -> Rollout:
    """Move a rollout on (stage, phase, state, result...) in one transaction."""
    encoded = {
        k: json.dumps(v) if k in ("result", "baseline", "options") and v is not None else v
        for k, v in values.items()
    }
    encoded["updated"] = time.time()
    sets = ", ".join(f"{k} = :{k}" for k in encoded)
    with write_tx(ws.conn, lock=f"rollout:{rollout_id}") as conn:
        conn.execute(f"UPDATE rollouts SET {sets} WHERE id = :id", {**encoded, "id": rollout_id})
    return get(ws, rollout_id)


def set_state(ws: Workspace, rollout_id: str, state: str, *, allowed: tuple[str, ...]) -> Rollout:
    """Change the state, refusing when the rollout is not in one of ``allowed``."""
    current = get(ws, rollout_id)
    if current.state not in allowed:
        raise FailedPreconditionError(
            f"rollout {rollout_id} is {current.state}", hint=f"only a {'/'.join(allowed)} one can"
        )
    return update(ws, rollout_id, state=state)


def devices(ws: Workspace, rollout_id: str) -> list[RolloutDevice]:
    """The devices the rollout put the new model on, by stage then id."""
    rows = ws.conn.execute(
        "SELECT device_id, stage, previous, status, applied_at FROM rollout_devices"
        " WHERE rollout_id = ? ORDER BY stage, device_id",
        (rollout_id,),
    ).fetchall()
    return [RolloutDevice(r[0], int(r[1]), json.loads(r[2]), r[3], float(r[4])) for r in rows]


def add_device(
    ws: Workspace, rollout_id: str, device_id: str, stage: int, previous: dict[str, Any]
) -> None:
    """Record (before its desired state changes) that ``stage`` takes ``device_id``."""
    now = time.time()
    with write_tx(ws.conn) as conn:
        conn.execute(
            "INSERT INTO rollout_devices (rollout_id, device_id, stage, previous, status,"
            " applied_at, updated) VALUES (?, ?, ?, ?, 'applied', ?, ?)"
            " ON CONFLICT DO NOTHING",
            (rollout_id, device_id, stage, json.dumps(previous), now, now),
        )
        add_edge_in_tx(conn, (ROLLOUT_KIND, rollout_id), (DEVICE_KIND, device_id), "staged")


def mark_device(ws: Workspace, rollout_id: str, device_id: str, status: str) -> None:
    """Set one device's status (``rolled_back`` after its old desired state is back, which
    the lineage records as ``rollout --rolled_back--> device``)."""
    with write_tx(ws.conn) as conn:
        conn.execute(
            "UPDATE rollout_devices SET status = ?, updated = ?"
            " WHERE rollout_id = ? AND device_id = ?",
            (status, time.time(), rollout_id, device_id),
        )
        if status == "rolled_back":
            add_edge_in_tx(conn, (ROLLOUT_KIND, rollout_id), (DEVICE_KIND, device_id), status)


def previous_model(previous: dict[str, Any]) -> str | None:
    """``name:version`` of a device's saved desired state (None when it named none)."""
    model = previous.get("model")
    if isinstance(model, dict) and model.get("name") and model.get("version"):
        return f"{model['name']}:{model['version']}"
    return None


def describe_rollout_edges(ws: Workspace, edges: list[dict[str, Any]]) -> None:
    """``amlpkg lineage``: the model and stage behind each ``rollout --> device`` edge.

    Sets ``detail`` (words) and ``rollout`` (``id, model, stage, percent, status, state,
    previous``: the stage is 1-based) on ``staged`` and ``rolled_back`` edges.
    """
    for edge in edges:
        if edge.get("src_kind") != ROLLOUT_KIND or edge.get("dst_kind") != DEVICE_KIND:
            continue
        row = ws.conn.execute(
            "SELECT r.model, r.stages, r.state, d.stage, d.status, d.previous"
            " FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id"
            " WHERE d.rollout_id = ? AND d.device_id = ?",
            (edge["src_id"], edge["dst_id"]),
        ).fetchone()
        if row is None:
            continue
        stage, percent = int(row[3]) + 1, json.loads(row[1])[int(row[3])]
        previous = previous_model(json.loads(row[5]) if row[5] else {})
        edge["rollout"] = {
            "id": edge["src_id"], "model": row[0], "stage": stage, "percent": percent,
            "status": row[4], "state": row[2], "previous": previous,
        }  # fmt: skip
        if edge.get("relation") == "rolled_back":
            edge["detail"] = (
                f"{row[0]} from stage {stage} ({percent:g}%) rolled back to"
                f" {previous or 'its previous desired state'}; rollout {row[2]}"
            )
        else:
            edge["detail"] = (
                f"{row[0]} by stage {stage} ({percent:g}%), {row[4].replace('_', ' ')};"
                f" rollout {row[2]}"
            )
