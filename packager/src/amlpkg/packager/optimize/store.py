"""The ``variants`` table: optimized variants as children of model versions.

Rows and their lineage edges (``model_version --optimized--> variant``) are
written in one transaction after every file is in the content store, so a
failure at any point leaves the workspace as it was (at worst an unreferenced
blob). ``--auto`` marks at most one variant per (model version, target) as
chosen; a later choice clears the earlier one in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlpkg.errors import NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import MODEL_VERSION_KIND, get_model_version

VARIANT_KIND = "variant"  # lineage node id: the variant id
OPTIMIZED = "optimized"  # model_version --optimized--> variant


@dataclass
class Variant:
    """One optimized variant of a model version, with what was measured about it."""

    id: str
    parent: str
    """``NAME:VERSION`` of the model version it was made from."""
    kind: str
    target: str
    precision: str
    sha256: str
    size: int
    providers: list[dict[str, Any]]
    """Execution providers to serve it with, in the runtime's config.yaml form."""
    measurements: dict[str, Any]
    accuracy: dict[str, Any]
    accepted: bool
    reason: str
    chosen: bool = False
    created: float = 0.0
    recipe: dict[str, Any] = field(default_factory=dict)
    """How the file was made: graph level, quantization settings, calibration sample."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "parent": self.parent,
            "kind": self.kind,
            "target": self.target,
            "precision": self.precision,
            "sha256": self.sha256,
            "size": self.size,
            "providers": self.providers,
            "recipe": self.recipe,
            "measurements": self.measurements,
            "accuracy": self.accuracy,
            "accepted": self.accepted,
            "reason": self.reason,
            "chosen": self.chosen,
            "created": self.created,
        }

    def summary(self) -> str:
        """One line with its key facts, for the lineage view."""
        state = "chosen" if self.chosen else "accepted" if self.accepted else "refused"
        speed = self.measurements.get("speedup")
        facts = [f"{self.target} {self.kind} {self.precision}", state]
        if speed is not None:
            facts.append(f"{speed:.2f}x speed")
        if "max_abs_error" in self.accuracy:
            facts.append(f"max abs err {self.accuracy['max_abs_error']:.3g}")
        facts.append(f"{self.size} bytes, sha256 {self.sha256[:12]}")
        return ", ".join(facts)


def new_variant_id(parent: str, target: str, kind: str, precision: str) -> str:
    """A readable, unique id: ``NAME:VERSION/target/kind-precision/<8 hex>``."""
    return f"{parent}/{target}/{kind}-{precision}/{uuid.uuid4().hex[:8]}"


def _row_to_variant(row: Any) -> Variant:
    return Variant(
        id=row["id"],
        parent=f"{row['parent_name']}:{row['parent_version']}",
        kind=row["kind"],
        target=row["target"],
        precision=row["precision"],
        sha256=row["sha256"],
        size=int(row["size"]),
        providers=json.loads(row["providers"]),
        recipe=json.loads(row["recipe"]),
        measurements=json.loads(row["measurements"]),
        accuracy=json.loads(row["accuracy"]),
        accepted=bool(row["accepted"]),
        reason=row["reason"],
        chosen=bool(row["chosen"]),
        created=float(row["created"]),
    )


def insert_variants(ws: Workspace, variants: list[Variant]) -> None:
    """Record ``variants`` and their lineage edges in one transaction.

    A chosen variant clears the chosen flag of earlier variants of the same
    model version and target.
    """
    with write_tx(ws.conn) as conn:
        for v in variants:
            name, _, version = v.parent.rpartition(":")
            if v.chosen:
                # History stays readable: the old row says what replaced it.
                conn.execute(
                    "UPDATE variants SET chosen = 0, reason = 'no longer chosen: --auto chose '"
                    " || ? || ' later; was ' || reason WHERE parent_name = ?"
                    " AND parent_version = ? AND target = ? AND chosen = 1",
                    (v.id, name, int(version), v.target),
                )
            conn.execute(
                "INSERT INTO variants (id, parent_name, parent_version, kind, target, precision,"
                " sha256, size, providers, recipe, measurements, accuracy, accepted, reason,"
                " chosen, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    v.id,
                    name,
                    int(version),
                    v.kind,
                    v.target,
                    v.precision,
                    v.sha256,
                    v.size,
                    json.dumps(v.providers, sort_keys=True),
                    json.dumps(v.recipe, sort_keys=True),
                    json.dumps(v.measurements, sort_keys=True),
                    json.dumps(v.accuracy, sort_keys=True),
                    int(v.accepted),
                    v.reason,
                    int(v.chosen),
                    v.created,
                ),
            )
            add_edge_in_tx(conn, (MODEL_VERSION_KIND, v.parent), (VARIANT_KIND, v.id), OPTIMIZED)


def list_variants(ws: Workspace, model_ref: str, target: str | None = None) -> list[Variant]:
    """Variants of the version ``model_ref`` names (optionally one target), oldest first."""
    version = get_model_version(model_ref, workspace=ws)
    sql = "SELECT * FROM variants WHERE parent_name = ? AND parent_version = ?"
    args: list[Any] = [version.name, version.version]
    if target is not None:
        sql += " AND target = ?"
        args.append(target)
    rows = ws.conn.execute(sql + " ORDER BY created, id", args).fetchall()
    return [_row_to_variant(r) for r in rows]


def get_variant(ws: Workspace, variant_id: str) -> Variant:
    """The variant with ``variant_id``."""
    row = ws.conn.execute("SELECT * FROM variants WHERE id = ?", (variant_id,)).fetchone()
    if row is None:
        raise NotFoundError(
            f"no variant {variant_id!r}", hint="list them: amlpkg lineage NAME:VERSION"
        )
    return _row_to_variant(row)


def best_variant(ws: Workspace, model_ref: str, target: str) -> Variant | None:
    """The variant ``amlpkg optimize --auto`` chose for ``target``, or None.

    None means: serve the original (never optimized for this target with
    ``--auto``, or no variant passed the limits).
    """
    version = get_model_version(model_ref, workspace=ws)
    row = ws.conn.execute(
        "SELECT * FROM variants WHERE parent_name = ? AND parent_version = ? AND target = ?"
        " AND chosen = 1 AND accepted = 1 ORDER BY created DESC, id DESC LIMIT 1",
        (version.name, version.version, target),
    ).fetchone()
    return None if row is None else _row_to_variant(row)


def variant_file(ws: Workspace, variant: Variant) -> Path:
    """The stored ONNX file of ``variant``, digest verified (read-only: copy to change it)."""
    return ws.artifacts.verified_path(variant.sha256)


def describe_edges(ws: Workspace, edges: list[dict[str, Any]]) -> None:
    """Set ``edge["detail"]`` to the variant's key facts on every edge into a variant."""
    for edge in edges:
        if edge.get("dst_kind") != VARIANT_KIND:
            continue
        row = ws.conn.execute("SELECT * FROM variants WHERE id = ?", (edge["dst_id"],)).fetchone()
        if row is not None:
            edge["detail"] = _row_to_variant(row).summary()


def serving_config(variant: Variant) -> dict[str, Any]:
    """The runtime ``config.yaml`` keys that serve ``variant`` as it was measured."""
    return {"execution_providers": [dict(p) for p in variant.providers]}
