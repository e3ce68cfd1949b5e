"""Batch scorings run on users' machines (or their Spark clusters), recorded in the lineage.

``amlpkg score`` against a server downloads the version's file, scores here and
sends the node ids of the datasets it read and wrote; the server records the same
two edges an embedded workspace does (``amlpkg.batch.lineage``):
``model_version --scored--> dataset IN --scored_into--> dataset OUT``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, StringConstraints

from amlpkg.server.deps import API, READ, WRITE, WorkspaceDep
from amlpkg.server.routers.registry import VersionNumber
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.trainer import registry
from amlpkg.trainer.registry import MODEL_VERSION_KIND

router = APIRouter(prefix=API, tags=["lineage"], dependencies=READ)
DATASET_KIND = "dataset"  # the kind amlpkg.batch.lineage gives a dataset node
# A dataset id: LOCATION@sha256:HEX or LOCATION#rows=N, LOCATION a path or a URL.
DatasetId = Annotated[
    str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class ScoringIn(BaseModel):
    """The datasets a scoring read and wrote, as lineage node ids."""

    input: DatasetId
    output: DatasetId | None = None


class ScoringOut(BaseModel):
    """The version that scored, and the edges now recorded."""

    model_version: str
    edges: int


@router.post(
    "/models/{name}/versions/{version}/scorings",
    response_model=ScoringOut,
    status_code=201,
    dependencies=WRITE,
)
def record_scoring(
    name: str, version: VersionNumber, body: ScoringIn, ws: WorkspaceDep, request: Request
) -> ScoringOut:
    """Record that the version scored ``input`` (into ``output``); recording twice is a no-op."""
    ref = registry.get_model_version(f"{name}:{version}", workspace=ws).ref
    with write_tx(ws.conn) as conn:
        add_edge_in_tx(conn, (MODEL_VERSION_KIND, ref), (DATASET_KIND, body.input), "scored")
        if body.output is not None:
            into = (DATASET_KIND, body.output)
            add_edge_in_tx(conn, (DATASET_KIND, body.input), into, "scored_into")
    request.state.audit_target = f"{ref}/scorings"
    return ScoringOut(model_version=ref, edges=1 if body.output is None else 2)
