"""Run artifacts: list, download, upload (streamed, bounded, sha256 checked), logs, environment."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from amlpkg.server import uploads
from amlpkg.server.bodies import ArtifactOut
from amlpkg.server.deps import API, READ, WRITE, State, WorkspaceDep
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.runner import LOG_ARTIFACT
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs

router = APIRouter(prefix=API, tags=["artifacts"], dependencies=READ)
ENVIRONMENT_ARTIFACT = "environment/requirements.txt"
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
UPLOAD_BODY = {"requestBody": {"required": True, "content": BINARY}}
Answers = dict[int | str, dict[str, Any]]
FILE_ANSWER: Answers = {200: {"content": BINARY, "description": "The artifact's bytes."}}
TEXT_ANSWER: Answers = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}


def _download(ws: Workspace, run: str, path: str, media_type: str) -> FileResponse:
    run_id = queries.resolve_run_id(ws, run)
    digest, _ = store_runs.get_artifact(ws, run_id, path)
    blob = ws.artifacts.verified_path(digest)  # a corrupt blob is refused, never served
    return FileResponse(blob, media_type=media_type, filename=PurePosixPath(path).name)


@router.get("/runs/{run}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(run: str, ws: WorkspaceDep) -> list[dict[str, object]]:
    """Every artifact of a run: path, sha256 and size."""
    return store_runs.list_artifacts(ws, queries.resolve_run_id(ws, run))


@router.get("/runs/{run}/artifacts/{path:path}", response_class=FileResponse, responses=FILE_ANSWER)
def download_artifact(run: str, path: str, ws: WorkspaceDep) -> FileResponse:
    """The bytes of one artifact, checked against its sha256 first."""
    return _download(ws, run, uploads.check_artifact_path(path), "application/octet-stream")


@router.put(
    "/runs/{run}/artifacts/{path:path}",
    response_model=ArtifactOut,
    status_code=201,
    dependencies=WRITE,
    openapi_extra=UPLOAD_BODY,
)
async def upload_artifact(
    *,
    run: str,
    path: str,
    sha256: Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="sha256 of the body")],
    request: Request,
    ws: WorkspaceDep,
    state: State,
) -> ArtifactOut:
    """Store the body as the artifact ``path`` of the run (replacing one of that path)."""
    uploads.check_artifact_path(path)
    run_id = await run_in_threadpool(queries.resolve_run_id, ws, run)
    limit = state.settings.max_artifact_bytes
    temp, size = await uploads.receive(request, state.uploads, limit=limit, sha256=sha256)
    try:
        digest, size = await run_in_threadpool(ws.artifacts.put_file, temp)
    finally:
        temp.unlink(missing_ok=True)
    await run_in_threadpool(store_runs.add_artifact, ws, run_id, path, digest, size)
    request.state.audit_target = f"{run_id}/{path}"
    return ArtifactOut(path=path, sha256=digest, size=size)


@router.get("/runs/{run}/logs", response_class=FileResponse, responses=TEXT_ANSWER)
def run_logs(run: str, ws: WorkspaceDep) -> FileResponse:
    """The run's captured stdout and stderr (``amlpkg run`` records them)."""
    return _download(ws, run, LOG_ARTIFACT, "text/plain; charset=utf-8")


@router.get("/runs/{run}/environment", response_class=FileResponse, responses=TEXT_ANSWER)
def run_environment(run: str, ws: WorkspaceDep) -> FileResponse:
    """The run's ``pip freeze``, taken when ``amlpkg run`` started it."""
    return _download(ws, run, ENVIRONMENT_ARTIFACT, "text/plain; charset=utf-8")
