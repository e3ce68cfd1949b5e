"""The lineage of any node: what it came from and everything made from it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from amlpkg.server.deps import API, READ, WorkspaceDep
from amlpkg.server.routers.registry import VersionNumber, public_source
from amlpkg.store.lineage_edges import describe, downstream, edges_to
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.lineage_view import lineage as version_lineage

router = APIRouter(prefix=API, tags=["lineage"], dependencies=READ)
Kind = Annotated[str, Path(pattern="^[a-z][a-z_]{0,31}$", description="run, model_version, ...")]
_MAX_EDGES = 10_000


class EdgeOut(BaseModel):
    """One arrow of the chain; ``detail`` says what the stage knows about its target."""

    src_kind: str
    src_id: str
    dst_kind: str
    dst_id: str
    relation: str
    created: float
    detail: str | None = None


class NodeLineageOut(BaseModel):
    """Edges leading to the node (followed back to the run) and every edge from it."""

    kind: str
    id: str
    upstream: list[EdgeOut]
    downstream: list[EdgeOut]


class VersionLineageOut(BaseModel):
    """A version, the run that made it (with its artifacts) and the edges around it."""

    model_version: dict[str, Any]
    run: dict[str, Any] | None
    upstream: list[EdgeOut]
    downstream: list[EdgeOut]


def _upstream(ws: Workspace, node: tuple[str, str]) -> list[dict[str, Any]]:
    # The store walks forwards only; walk back here, breadth first, cycles ignored.
    seen, queue = {node}, [node]
    found: list[dict[str, Any]] = []
    while queue and len(found) < _MAX_EDGES:
        for edge in edges_to(ws, queue.pop(0)):
            found.append(edge.to_dict())
            source = (edge.src_kind, edge.src_id)
            if source not in seen:
                seen.add(source)
                queue.append(source)
    return found


@router.get("/lineage/{kind}/{node_id:path}", response_model=NodeLineageOut)
def node_lineage(kind: Kind, node_id: str, ws: WorkspaceDep) -> dict[str, Any]:
    """Lineage of any node: ``run/<id>``, ``model_version/NAME:V``, ``device/<id>``, ..."""
    node = (kind, node_id)
    up = _upstream(ws, node)
    down = [e.to_dict() for e in downstream(ws, node)]
    describe(ws, up)
    describe(ws, down)
    return {"kind": kind, "id": node_id, "upstream": up, "downstream": down}


@router.get("/models/{name}/versions/{version}/lineage", response_model=VersionLineageOut)
def model_version_lineage(name: str, version: VersionNumber, ws: WorkspaceDep) -> dict[str, Any]:
    """The version, the run that made it, and every stage made from it."""
    result = version_lineage(f"{name}:{version}", workspace=ws)
    describe(ws, result["upstream"])
    describe(ws, result["downstream"])
    result["model_version"]["source"] = public_source(result["model_version"]["source"])
    return result
