"""Edge devices' tags and the edge agent's images, written by contributors' CLIs.

``amlpkg devices tag`` patches one device's tags and ``amlpkg devices import-tags``
gives devices exactly their IoT Hub twins' tags (the hub is queried on the user's
machine, with their connection string; the pages are sent here), with the store's
own :func:`amlpkg.collector.devices.set_tags`. ``amlpkg build --flavor edge-agent``
builds and pushes on the user's machine and records the image here, so ``deploy
--target iotedge`` anywhere pins the newest one by digest.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, StringConstraints

from amlpkg.collector.devices import MAX_TAG_VALUE, MAX_TAGS, set_tags
from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.agent_image import pushed_agent_images, recorder
from amlpkg.packager.build.api import PUSHED_AS
from amlpkg.packager.rollout.twins import replace_tags
from amlpkg.server.deps import API, READ, WRITE, WorkspaceDep
from amlpkg.server.routers.views import DeviceRecordOut

router = APIRouter(prefix=API, dependencies=READ)
MAX_DEVICES = 1000
"""Devices per ``import-tags`` request (the client sends a long hub's pages in parts)."""

DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TagName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE)]
# A patch may set every tag and remove as many; the store refuses more than it can hold.
TagPatch = Annotated[dict[TagName, TagValue | None], Field(max_length=2 * MAX_TAGS)]
Platform = Literal["linux/amd64", "linux/arm64"]


class TagsIn(BaseModel):
    """A merge patch of one device's tags: a null value removes that tag."""

    tags: TagPatch


class ImportIn(BaseModel):
    """Devices and the tags each gets exactly (an IoT Hub twin query's page)."""

    devices: Annotated[
        dict[DeviceId, dict[TagName, TagValue | None]], Field(max_length=MAX_DEVICES)
    ]


class ImportOut(BaseModel):
    """The devices whose tags were written, and those refused (why)."""

    imported: list[str]
    refused: dict[str, str]


class AgentImageIn(BaseModel):
    """One agent image built for ``platform``: pushed (``REPOSITORY@sha256:...``) or local."""

    platform: Platform
    image: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    relation: Literal["pushed_as", "built_as"]


class AgentImagesOut(BaseModel):
    """The newest agent image pushed for each platform."""

    images: dict[str, str]


_DIGEST = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


@router.patch("/device-records/{device_id}/tags", response_model=DeviceRecordOut,
              dependencies=WRITE, tags=["devices"])  # fmt: skip
def tag_device(
    device_id: Annotated[str, Path(min_length=1, max_length=200)], body: TagsIn, ws: WorkspaceDep
) -> dict[str, Any]:
    """Set or remove tags of one device (made if new), as ``amlpkg devices tag``."""
    return set_tags(ws, device_id, dict(body.tags)).to_dict()


@router.put("/device-records/tags", response_model=ImportOut, dependencies=WRITE,
            tags=["devices"])  # fmt: skip
def import_tags(body: ImportIn, ws: WorkspaceDep, request: Request) -> dict[str, Any]:
    """Give each device exactly these tags (``amlpkg devices import-tags``)."""
    done = replace_tags(ws, {device: dict(tags) for device, tags in body.devices.items()})
    request.state.audit_target = f"{len(done.imported)} devices"
    return {"imported": done.imported, "refused": done.refused}


@router.get("/agent-images", response_model=AgentImagesOut, tags=["packages"])
def agent_images(ws: WorkspaceDep) -> dict[str, Any]:
    """What ``deploy --target iotedge`` pins when no ``--agent-image`` is named."""
    return {"images": pushed_agent_images(ws)}


@router.post("/agent-images", response_model=AgentImagesOut, status_code=201,
             dependencies=WRITE, tags=["packages"])  # fmt: skip
def record_agent_image(body: AgentImageIn, ws: WorkspaceDep, request: Request) -> dict[str, Any]:
    """Record an agent image ``amlpkg build --flavor edge-agent`` made."""
    if body.relation == PUSHED_AS and not _DIGEST.match(body.image):
        raise InvalidArgumentError(
            f"a pushed agent image is named by digest, not {body.image[:80]!r}",
            hint="REPOSITORY@sha256:<64 hex digits>",
        )
    recorder(ws)(body.platform, body.image, body.relation)
    request.state.audit_target = f"{body.platform} {body.image}"
    return {"images": pushed_agent_images(ws)}
