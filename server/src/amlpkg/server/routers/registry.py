"""The model registry: models, versions (from a run's artifact or an upload), aliases."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from amlpkg.server import uploads
from amlpkg.server.bodies import AliasIn, ModelOut, VersionIn, VersionOut
from amlpkg.server.deps import API, READ, WRITE, Caller, State, WorkspaceDep, audit_now
from amlpkg.server.routers.artifacts import BINARY
from amlpkg.server.tokens import TokenInfo
from amlpkg.store.workspace import Workspace
from amlpkg.trainer import registry
from amlpkg.trainer.refs import check_name
from amlpkg.trainer.registry import ModelVersion

router = APIRouter(prefix=API, tags=["models"], dependencies=READ)
VersionNumber = Annotated[int, Path(ge=1, le=2**31)]
ONNX_FILE = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\.onnx$"


def public_source(source: str) -> str:
    """``runs:/...`` as is; a path (on the server or a user's machine) cut to its file name."""
    return source if source.startswith(registry.RUNS_SCHEME) else PurePath(source).name


def version_out(version: ModelVersion) -> dict[str, Any]:
    """The version as answered, with its :func:`public_source`."""
    return {**version.to_dict(), "source": public_source(version.source)}


@router.get("/models", response_model=list[ModelOut])
def list_models(ws: WorkspaceDep) -> list[dict[str, Any]]:
    """One summary per registered model."""
    return registry.list_models(workspace=ws)


@router.get("/models/{name}/versions", response_model=list[VersionOut])
def list_versions(name: str, ws: WorkspaceDep) -> list[dict[str, Any]]:
    """Every version of a model, newest first."""
    return [version_out(v) for v in registry.list_versions(name, workspace=ws)]


@router.post(
    "/models/{name}/versions", response_model=VersionOut, status_code=201, dependencies=WRITE
)
def register_version(
    name: str, body: VersionIn, ws: WorkspaceDep, request: Request, caller: Caller
) -> dict[str, Any]:
    """Register the ONNX artifact ``runs:/RUN/PATH`` of a run as the next version."""
    version = registry.register(
        name,
        body.source,
        tags=body.tags,
        description=body.description,
        aliases=body.aliases,
        in_transaction=_audit_in_transaction(request, ws, caller),
        workspace=ws,
    )
    return version_out(version)


def _audit_in_transaction(
    request: Request, ws: Workspace, caller: TokenInfo
) -> registry.InTransaction:
    """The audit row written in the registration's own transaction (one commit for all)."""
    return lambda version: audit_now(request, ws, caller, target=version.ref)


@router.post(
    "/models/{name}/versions/upload",
    response_model=VersionOut,
    status_code=201,
    dependencies=WRITE,
    openapi_extra={"requestBody": {"required": True, "content": BINARY}},
)
async def upload_version(
    *,
    name: str,
    sha256: Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="sha256 of the body")],
    request: Request,
    ws: WorkspaceDep,
    state: State,
    caller: Caller,
    run: Annotated[str | None, Query(max_length=32, description="the run that made it")] = None,
    description: Annotated[str | None, Query(max_length=2000)] = None,
    filename: Annotated[str, Query(pattern=ONNX_FILE, description="shown as its source")] = (
        "model.onnx"
    ),
) -> dict[str, Any]:
    """Register the ONNX file in the body (streamed, bounded, sha256 checked) as a version."""
    check_name(name)  # before reading a byte of the body
    limit = state.settings.max_model_bytes
    temp, _ = await uploads.receive(request, state.uploads, limit=limit, sha256=sha256)
    # The registry records the file's name as the version's source: give it the client's.
    audit_row = _audit_in_transaction(request, ws, caller)
    with uploads.named(temp, filename) as named:
        version = await run_in_threadpool(
            lambda: registry.register(
                name, named, run=run, description=description, in_transaction=audit_row,
                workspace=ws,
            )
        )  # fmt: skip
    return version_out(version)


@router.get("/models/{name}/versions/{version}", response_model=VersionOut)
def get_version(name: str, version: VersionNumber, ws: WorkspaceDep) -> dict[str, Any]:
    """One version of a model."""
    return version_out(registry.get_model_version(f"{name}:{version}", workspace=ws))


@router.get("/models/{name}/aliases/{alias}", response_model=VersionOut)
def get_alias(name: str, alias: str, ws: WorkspaceDep) -> dict[str, Any]:
    """The version an alias points at."""
    return version_out(registry.get_model_version(f"{name}@{alias}", workspace=ws))


@router.put("/models/{name}/aliases/{alias}", response_model=VersionOut, dependencies=WRITE)
def set_alias(name: str, alias: str, body: AliasIn, ws: WorkspaceDep) -> dict[str, Any]:
    """Point ``NAME@ALIAS`` at a version (moving it if it pointed elsewhere)."""
    return version_out(registry.set_alias(name, body.version, alias, workspace=ws))
