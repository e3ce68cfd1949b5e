"""Variants and packages: read and written through the packager's record functions.

``amlpkg optimize --tracking-uri`` downloads a version's file here, makes and
measures variants on the user's machine, then uploads their files and records
the rows (:mod:`amlpkg.server.variants` checks them). Deployments have their own
routes (:mod:`amlpkg.server.routers.deployments`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build import records
from amlpkg.packager.build.records import get_package, list_packages
from amlpkg.packager.optimize.store import get_variant, insert_variants, list_variants
from amlpkg.server import uploads
from amlpkg.server.deps import API, READ, WRITE, State, WorkspaceDep
from amlpkg.server.packages import PackageIn
from amlpkg.server.packages import checked as checked_package
from amlpkg.server.routers.artifacts import FILE_ANSWER, UPLOAD_BODY
from amlpkg.server.routers.registry import VersionNumber
from amlpkg.server.variants import VariantsIn, checked
from amlpkg.trainer import registry
from amlpkg.trainer.signature import inspect_onnx

router = APIRouter(prefix=API, dependencies=READ)


class VariantOut(BaseModel):
    """An optimized variant of a model version and what was measured about it."""

    id: str
    parent: str
    kind: str
    target: str
    precision: str
    sha256: str
    size: int
    providers: list[dict[str, Any]]
    recipe: dict[str, Any]
    measurements: dict[str, Any]
    accuracy: dict[str, Any]
    accepted: bool
    reason: str
    chosen: bool
    created: float


class PackageOut(BaseModel):
    """A build: an image, a folder, a tarball or a Triton repository."""

    id: str
    model_name: str
    model_version: int
    model_ref: str
    flavor: str
    platform: str
    format: str
    variant_id: str | None
    image_ref: str | None
    image_id: str | None
    repo_digest: str | None
    size_bytes: int | None
    labels: dict[str, str]
    build_seconds: float | None
    created: float


@router.get(
    "/models/{name}/versions/{version}/variants",
    response_model=list[VariantOut],
    tags=["variants"],
)
def version_variants(
    name: str,
    version: VersionNumber,
    ws: WorkspaceDep,
    target: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """The optimized variants of a model version, oldest first."""
    return [v.to_dict() for v in list_variants(ws, f"{name}:{version}", target)]


@router.get(
    "/models/{name}/versions/{version}/file",
    response_class=FileResponse,
    responses=FILE_ANSWER,
    tags=["variants"],
)
def version_file(
    name: str,
    version: VersionNumber,
    ws: WorkspaceDep,
    variant: Annotated[str | None, Query(max_length=400, description="a variant's file")] = None,
) -> FileResponse:
    """The version's (or one of its variants') ONNX file, sha256 checked first, to build or
    optimize it on another machine."""
    found = registry.get_model_version(f"{name}:{version}", workspace=ws)
    digest = found.sha256
    if variant is not None:
        chosen = get_variant(ws, variant)
        if chosen.parent != found.ref:
            raise InvalidArgumentError(f"variant {variant!r} is not one of {found.ref}")
        digest = chosen.sha256
    blob = ws.artifacts.verified_path(digest)  # a corrupt blob is refused, never served
    return FileResponse(blob, media_type="application/octet-stream", filename="model.onnx")


class FileOut(BaseModel):
    """A file the server keeps by content."""

    sha256: str
    size: int


@router.put(
    "/models/{name}/versions/{version}/variant-files",
    response_model=FileOut,
    status_code=201,
    dependencies=WRITE,
    openapi_extra=UPLOAD_BODY,
    tags=["variants"],
)
async def upload_variant_file(
    *,
    name: str,
    version: VersionNumber,
    sha256: Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="sha256 of the body")],
    request: Request,
    ws: WorkspaceDep,
    state: State,
) -> FileOut:
    """Keep a variant's ONNX file (streamed, bounded, sha256 checked) before its row is sent."""
    ref = f"{name}:{version}"
    await run_in_threadpool(lambda: registry.get_model_version(ref, workspace=ws))
    limit = state.settings.max_model_bytes
    temp, _ = await uploads.receive(request, state.uploads, limit=limit, sha256=sha256)
    try:
        with uploads.named(temp, "variant.onnx") as named:
            # An ONNX model, or 400 (named as the client's file, never as a server path).
            await run_in_threadpool(lambda: inspect_onnx(named, shown_as=Path("variant.onnx")))
            digest, size = await run_in_threadpool(ws.artifacts.put_file, named)
    finally:
        temp.unlink(missing_ok=True)
    request.state.audit_target = f"{ref}/variant-files/{digest}"
    return FileOut(sha256=digest, size=size)


@router.post(
    "/models/{name}/versions/{version}/variants",
    response_model=list[VariantOut],
    status_code=201,
    dependencies=WRITE,
    tags=["variants"],
)
def record_variants(
    name: str, version: VersionNumber, body: VariantsIn, ws: WorkspaceDep, request: Request
) -> list[dict[str, Any]]:
    """Record variants made elsewhere (files uploaded first) with their lineage edges."""
    parent = registry.get_model_version(f"{name}:{version}", workspace=ws).ref
    variants = checked(ws, parent, body, time.time())
    insert_variants(ws, variants)
    request.state.audit_target = ",".join(v.id for v in variants)[:1000] or parent
    return [get_variant(ws, v.id).to_dict() for v in variants]


@router.get("/variants/{variant_id:path}", response_model=VariantOut, tags=["variants"])
def variant(variant_id: str, ws: WorkspaceDep) -> dict[str, Any]:
    """One variant by id (``NAME:VERSION/target/kind-precision/xxxxxxxx``)."""
    return get_variant(ws, variant_id).to_dict()


@router.get("/packages", response_model=list[PackageOut], tags=["packages"])
def packages(
    ws: WorkspaceDep, model: Annotated[str | None, Query(max_length=128)] = None
) -> list[dict[str, Any]]:
    """Packages, newest first, optionally of one model."""
    return [p.to_dict() for p in list_packages(ws, model)]


@router.post("/packages", response_model=PackageOut, status_code=201, dependencies=WRITE,
             tags=["packages"])  # fmt: skip
def record_package(body: PackageIn, ws: WorkspaceDep, request: Request) -> dict[str, Any]:
    """Record a package built elsewhere (``amlpkg build``) with its lineage edges."""
    package = checked_package(ws, body, time.time())
    made = None if body.made is None else ((body.made.kind, body.made.id), body.made.relation)
    records.record_package(ws, package, made)
    request.state.audit_target = package.id
    return get_package(ws, package.id).to_dict()


@router.get("/packages/{package_id}", response_model=PackageOut, tags=["packages"])
def package(package_id: str, ws: WorkspaceDep) -> dict[str, Any]:
    """One package (its local build folder is not shown: it is a path on the server)."""
    return get_package(ws, package_id).to_dict()
