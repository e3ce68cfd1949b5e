"""Packages built on a user's machine (``amlpkg build --tracking-uri``), checked before recorded.

The build runs where the user is (their Docker engine, their registry, their
folders); the server records the package row and its lineage edges with the
store's own :func:`amlpkg.packager.build.records.record_package`, once the row
names a version (and variant of it) the server knows and a new package id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from amlpkg.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from amlpkg.packager.build.records import Package, get_package
from amlpkg.packager.optimize.store import get_variant
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import get_model_version

Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class MadeIn(BaseModel):
    """What the build made: a pushed or local image, or a folder written."""

    kind: Literal["image", "folder"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    relation: Literal["pushed_as", "built_as", "written_to"]


class PackageIn(BaseModel):
    """One build, as ``amlpkg build`` made it."""

    id: Annotated[str, StringConstraints(pattern=r"^pkg-\d{14}-[0-9a-f]{6}$")]
    model_name: Text
    model_version: int = Field(ge=1, le=2**31)
    variant_id: Annotated[str, StringConstraints(max_length=400)] | None = None
    flavor: Short
    platform: Annotated[str, StringConstraints(max_length=64)]
    format: Literal["image", "dir", "tar", "triton"]
    image_ref: Text | None = None
    image_id: Text | None = None
    repo_digest: Text | None = None
    path: Annotated[str, StringConstraints(max_length=4096)] | None = None
    size_bytes: int | None = Field(default=None, ge=0, le=2**50)
    labels: Annotated[dict[str, str], Field(max_length=200)] = Field(default_factory=dict)
    build_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    made: MadeIn | None = None


def checked(ws: Workspace, body: PackageIn, now: float) -> Package:
    """The package to record, or the first reason to refuse it (nothing is written here)."""
    version = get_model_version(f"{body.model_name}:{body.model_version}", workspace=ws)
    if body.variant_id is not None and get_variant(ws, body.variant_id).parent != version.ref:
        raise InvalidArgumentError(f"variant {body.variant_id!r} is not one of {version.ref}")
    try:
        get_package(ws, body.id)
    except NotFoundError:
        pass
    else:
        raise AlreadyExistsError(f"package {body.id} is recorded already")
    fields = body.model_dump(exclude={"made"})
    return Package(**fields, created=now)
