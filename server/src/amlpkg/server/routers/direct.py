"""Large files straight to the bucket: presigned URLs, then a checked commit.

``POST /uploads`` answers presigned URLs (one PUT, or multipart parts) for a file of a
given sha256 and size; the client sends the bytes to the bucket, never through this
server; ``POST /uploads/{id}/artifact`` or ``.../model-version`` then checks the object
(size, sha256: see :mod:`amlpkg.store.s3_direct`), stores it under its digest and only
then records the row. A server whose artifacts live in a folder answers 409: the client
streams the file through the server instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from amlpkg.errors import FailedPreconditionError
from amlpkg.server import uploads
from amlpkg.server.bodies import ArtifactOut, Body, Name, Text, VersionOut
from amlpkg.server.deps import API, READ, WRITE, Caller, State, WorkspaceDep, audit_now
from amlpkg.server.routers.registry import version_out
from amlpkg.store import s3_direct
from amlpkg.store.s3 import S3ArtifactStore
from amlpkg.store.workspace import Workspace
from amlpkg.trainer import registry
from amlpkg.trainer.refs import check_name
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs

router = APIRouter(prefix=API, tags=["uploads"], dependencies=READ)
Sha256 = Annotated[str, StringConstraints(pattern="^[0-9a-f]{64}$")]
UploadId = Annotated[str, Path(pattern="^[0-9a-f]{32}$")]
ONNX_FILE = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\.onnx$"


class DirectUploadsOffError(FailedPreconditionError):
    """This server keeps artifacts in a folder: files go through it (409)."""

    http_status = 409
    code = "direct_uploads_off"


class UploadIn(Body):
    """A file to send straight to the bucket."""

    sha256: Sha256
    size: int = Field(ge=0, le=s3_direct.MAX_BYTES)


class UploadOut(BaseModel):
    """Where to send it: each part's URL (one URL: a single PUT with ``headers``)."""

    upload_id: str
    multipart_id: str | None
    part_bytes: int
    urls: list[str]
    headers: dict[str, str]
    expires_in: int


class CommitIn(Body):
    """What was sent: the file's sha256 and size, and each part's ETag (multipart)."""

    sha256: Sha256
    size: int = Field(ge=0, le=s3_direct.MAX_BYTES)
    multipart_id: Annotated[str, StringConstraints(max_length=1024)] | None = None
    etags: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=s3_direct.MAX_PARTS
    )


class ArtifactCommitIn(CommitIn):
    """Record the upload as artifact ``path`` of ``run``."""

    run: Annotated[str, StringConstraints(min_length=4, max_length=32)]
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class VersionCommitIn(CommitIn):
    """Register the upload (an ONNX file) as the next version of ``name``."""

    name: Name
    filename: Annotated[str, StringConstraints(pattern=ONNX_FILE)] = "model.onnx"
    run: Annotated[str, StringConstraints(min_length=4, max_length=32)] | None = None
    description: Text | None = None
    aliases: list[Name] = Field(default_factory=list, max_length=20)


def _bucket(ws: Workspace) -> S3ArtifactStore:
    if not isinstance(ws.artifacts, S3ArtifactStore):
        raise DirectUploadsOffError(
            "this server keeps artifacts in a folder, not a bucket",
            hint="send the file through the server (PUT /api/v1/runs/RUN/artifacts/PATH"
            " or POST /api/v1/models/NAME/versions/upload)",
        )
    return ws.artifacts


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise FailedPreconditionError(
            f"the file has {size} bytes; this server takes at most {limit}",
            hint="ask the server's owner to raise the limit",
        )


@router.post("/uploads", response_model=UploadOut, status_code=201, dependencies=WRITE)
def start_upload(body: UploadIn, ws: WorkspaceDep, state: State) -> UploadOut:
    """Presigned URLs for sending a file of this sha256 and size to the bucket."""
    store = _bucket(ws)
    _check_size(body.size, max(state.settings.max_artifact_bytes, state.settings.max_model_bytes))
    grant = s3_direct.start(store, body.sha256, body.size)
    return UploadOut(**grant.__dict__)


async def _finish(ws: Workspace, upload_id: str, body: CommitIn, limit: int) -> None:
    store = _bucket(ws)
    _check_size(body.size, limit)
    await run_in_threadpool(
        lambda: s3_direct.finish(
            store, upload_id, body.sha256, body.size,
            multipart_id=body.multipart_id, etags=body.etags,
        )
    )  # fmt: skip


@router.post(
    "/uploads/{upload_id}/artifact", response_model=ArtifactOut, status_code=201, dependencies=WRITE
)
async def commit_artifact(
    *,
    upload_id: UploadId,
    body: ArtifactCommitIn,
    request: Request,
    ws: WorkspaceDep,
    state: State,
) -> ArtifactOut:
    """Check the upload and record it as a run's artifact (replacing one of that path)."""
    path = uploads.check_artifact_path(body.path)
    run_id = await run_in_threadpool(queries.resolve_run_id, ws, body.run)
    await _finish(ws, upload_id, body, state.settings.max_artifact_bytes)
    await run_in_threadpool(store_runs.add_artifact, ws, run_id, path, body.sha256, body.size)
    request.state.audit_target = f"{run_id}/{path}"
    return ArtifactOut(path=path, sha256=body.sha256, size=body.size)


@router.post(
    "/uploads/{upload_id}/model-version",
    response_model=VersionOut,
    status_code=201,
    dependencies=WRITE,
)
async def commit_version(
    *,
    upload_id: UploadId,
    body: VersionCommitIn,
    request: Request,
    ws: WorkspaceDep,
    state: State,
    caller: Caller,
) -> dict[str, Any]:
    """Check the upload and register it (a valid ONNX file) as the next version."""
    check_name(body.name)
    await _finish(ws, upload_id, body, state.settings.max_model_bytes)
    version = await run_in_threadpool(
        lambda: registry.register_stored(
            body.name, body.sha256, source=body.filename, run=body.run,
            description=body.description, aliases=body.aliases, workspace=ws,
            in_transaction=lambda v: audit_now(request, ws, caller, target=v.ref),
        )
    )  # fmt: skip
    return version_out(version)
