"""The main job's build step: an image when a Docker engine answers, a clear line when not."""

from __future__ import annotations

from collections.abc import Callable

from amlpkg.packager.build.errors import DockerUnavailableError
from amlpkg.packager.build.options import BuildOptions, Hooks
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import get_model_version


def _quiet(message: str) -> None:
    """Default status callback: say nothing."""


def quickstart_step(
    ws: Workspace,
    model_ref: str,
    *,
    tag: str | None = None,
    push_to: str | None = None,
    on_status: Callable[[str], None] = _quiet,
) -> str:
    """Build the CPU image of ``model_ref`` if Docker is there; one line saying what happened.

    A failing build raises (a broken image is not "no Docker"). Never raises for a
    missing engine: without Docker the line says so and how to get
    the same server without it (``amlpkg package``). The base is ``python:3.11-slim``
    when the engine has it, else the locally made Debian base (made once, ~1 minute).
    ``push_to`` (a registry such as ``127.0.0.1:5000``) also pushes the image.
    """
    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base, local_image_id
    from amlpkg.packager.build.flavors import get_flavor

    try:
        default_base = get_flavor("cpu").base_image
        if local_image_id(default_base) is not None:
            base = default_base
        else:
            # No public registry may be reachable: a base made here always works.
            ensure_local_base(on_status=on_status)
            base = LOCAL_BASE_TAG
    except DockerUnavailableError as exc:
        return (
            f"no Docker engine, so no image was built ({exc.message}); "
            f"`amlpkg package {model_ref} --output DIR` makes the same server as a folder"
        )
    image_tag = tag
    if push_to and image_tag is None:
        version = get_model_version(model_ref, workspace=ws)
        image_tag = f"{push_to}/amlpkg/{version.name.lower()}:{version.version}-cpu"
    options = BuildOptions(base_image=base, tag=image_tag, push=push_to is not None)
    try:
        package = build_image(ws, model_ref, options, Hooks(on_status=on_status))
    except DockerUnavailableError as exc:  # the engine went away meanwhile
        return f"no Docker engine, so no image was built ({exc.message})"
    size = (package.size_bytes or 0) / 1e6
    where = package.repo_digest or package.image_ref
    return (
        f"built image {where} ({size:.0f} MB, {package.build_seconds:.0f} s), package"
        f" {package.id}; run it: docker run -p 8000:8000 -p 8001:8001 {package.image_ref}"
    )
