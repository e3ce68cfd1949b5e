"""Deployments: read by everyone, and recorded by ``amlpkg deploy`` run on a user's machine.

``amlpkg deploy --tracking-uri`` acts on the target from the user's machine (their
Docker engine, kube context, IoT hub) and keeps the rows here in step: it reads a
deployment's revisions whole (``config`` and ``state`` included: what ``status``,
``delete`` and ``rollback`` need), records each new revision before it starts
(refused unless it is the next number) and moves it on as it goes. Those are
contributor routes; readers see the revisions without ``config`` and ``state``.
The rows and lineage edges are written with the packager's own record functions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, StringConstraints

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.build.records import get_package
from amlpkg.packager.deploy import records as deployments
from amlpkg.server.bodies import Body
from amlpkg.server.deps import API, READ, WRITE, WorkspaceDep, require
from amlpkg.server.roles import Role
from amlpkg.trainer import registry

router = APIRouter(prefix=API, tags=["deployments"], dependencies=READ)
CONTRIBUTOR = [Depends(require(Role.contributor))]

Ref = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
RevisionNumber = Annotated[int, Path(ge=1, le=2**31)]


class DeploymentOut(BaseModel):
    """One revision of a named deployment."""

    id: str
    name: str
    revision: int
    target: str
    model: str | None
    package: str | None
    image: str | None
    image_digest: str | None
    endpoints: dict[str, str | None]
    status: str
    reason: str | None
    created: float
    updated: float
    created_by: str


class RevisionOut(DeploymentOut):
    """A revision whole: the options it was deployed with and what its target keeps."""

    config: dict[str, Any]
    state: dict[str, Any]


class RevisionIn(Body):
    """A revision ``amlpkg deploy`` is about to start, recorded ``pending``."""

    revision: int = Field(ge=1, le=2**31, description="the next number of the deployment")
    target: Literal["local", "docker", "kubernetes", "iotedge"]
    model: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None, description="NAME:VERSION of a version recorded here"
    )
    package: Ref | None = Field(
        default=None, description="a package id recorded here, or an oci:// reference"
    )
    image: Ref | None = None
    image_digest: Ref | None = None
    config: Annotated[dict[str, Any], Field(max_length=200)] = Field(default_factory=dict)
    created_by: Annotated[str, StringConstraints(min_length=1, max_length=300)]


class RevisionUpdate(Body):
    """How a revision moved on: its status (with the reason), state and endpoints."""

    status: Literal["pending", "ready", "failed", "stopped"] | None = None
    reason: Annotated[str, StringConstraints(max_length=8000)] | None = None
    state: Annotated[dict[str, Any], Field(max_length=200)] | None = None
    endpoint_http: Ref | None = None
    endpoint_grpc: Ref | None = None
    image_digest: Ref | None = None


def _name(name: str) -> str:
    return deployments.check_deployment_name(name)


@router.get("/deployments", response_model=list[DeploymentOut])
def list_deployments(ws: WorkspaceDep) -> list[dict[str, Any]]:
    """The newest revision of every deployment."""
    return [d.to_dict() for d in deployments.latest_per_name(ws)]


@router.get("/deployments/{name}", response_model=list[DeploymentOut])
def deployment_history(name: str, ws: WorkspaceDep) -> list[dict[str, Any]]:
    """Every revision of a deployment, newest first."""
    history = deployments.history(ws, _name(name))
    if not history:
        deployments.get(ws, name)  # raises the store's own NotFoundError
    return [d.to_dict() for d in history]


@router.get(
    "/deployments/{name}/revisions", response_model=list[RevisionOut], dependencies=CONTRIBUTOR
)
def revisions(name: str, ws: WorkspaceDep) -> list[dict[str, Any]]:
    """Every revision whole, newest first; none for a name not deployed yet."""
    return [d.to_dict() for d in deployments.history(ws, _name(name))]


@router.post(
    "/deployments/{name}/revisions",
    response_model=RevisionOut,
    status_code=201,
    dependencies=WRITE,
)
def record_revision(
    name: str, body: RevisionIn, ws: WorkspaceDep, request: Request
) -> dict[str, Any]:
    """Record the next revision (``pending``) with its lineage edges from its version and
    package; a number someone else took first is refused (409)."""
    name = _name(name)
    model = None
    if body.model is not None:
        model = registry.get_model_version(body.model, workspace=ws).ref
        if model != body.model:
            raise InvalidArgumentError(
                f"model {body.model!r} is not a NAME:VERSION", hint=f"send {model!r}"
            )
    if body.package is not None and body.package.startswith("pkg-"):
        get_package(ws, body.package)  # 404 for a package not recorded here
    record = deployments.create(
        ws,
        name=name,
        target=body.target,
        config=body.config,
        model=model,
        package=body.package,
        image=body.image,
        image_digest=body.image_digest,
        revision=body.revision,
        created_by=body.created_by,
    )
    request.state.audit_target = record.id
    return record.to_dict()


@router.patch(
    "/deployments/{name}/revisions/{revision}", response_model=RevisionOut, dependencies=WRITE
)
def update_revision(
    name: str, revision: RevisionNumber, body: RevisionUpdate, ws: WorkspaceDep
) -> dict[str, Any]:
    """Move a revision on (only the fields given change; ``reason`` goes with ``status``)."""
    record = deployments.get(ws, f"{_name(name)}:{revision}")
    return deployments.update(ws, record.id, **body.model_dump()).to_dict()


def _acted_on_here(ws: WorkspaceDep, name: str, command: str) -> str:
    """``name``, unless a user's machine deployed it: its target (a supervisor, a Docker
    engine, a kube context, an IoT hub) is reached from there, not from this server."""
    name = _name(name)
    made_by_client = [r for r in deployments.history(ws, name) if r.config.get("origin")]
    if made_by_client:
        last = made_by_client[-1]
        raise FailedPreconditionError(
            f"deployment {name!r} was deployed from a user's machine ({last.created_by}),"
            " and this server does not reach its target",
            hint=f"run `amlpkg deployments {command} {name}` with this server configured",
        )
    return name


@router.post("/deployments/{name}/rollback", response_model=DeploymentOut, dependencies=WRITE)
def rollback(name: str, ws: WorkspaceDep) -> dict[str, Any]:
    """Deploy again what the revision before the serving one ran (a new revision); only
    for deployments made on this server's own workspace (``amlpkg deploy --home``)."""
    from amlpkg.packager.deploy import api  # pulls in the targets' clients: only when used

    return api.rollback(_acted_on_here(ws, name, "rollback"), workspace=ws).to_dict()


@router.delete("/deployments/{name}", response_model=DeploymentOut, dependencies=WRITE)
def delete(name: str, ws: WorkspaceDep) -> dict[str, Any]:
    """Stop everything running for a deployment; its records stay as history. As for
    ``rollback``, a deployment made from a user's machine is deleted from there."""
    from amlpkg.packager.deploy import api

    return api.delete(_acted_on_here(ws, name, "delete"), workspace=ws).to_dict()
