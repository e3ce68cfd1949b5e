"""A ModelPack ``oci://`` source given to a docker deploy's container, on any Docker host.

The model was fetched from the registry by digest (and verified with ``--trust``) on
this machine; a read-only bind mount of that folder would work only when the engine
runs here too. Instead each revision gets a named volume mounted over the image's
``/models`` (``nocopy``: the image's own model is hidden, not copied in), and the
repository is put into it through the engine's archive API before the container
starts, which works the same on the local socket, ``tcp://`` and ``ssh://``. The
container keeps its read-only root; the volume goes when its revision is retired,
aborted or deleted.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from amlpkg.packager.deploy.oci_source import OciModel
from amlpkg.packager.deploy.targets import docker_switch as sw
from amlpkg.packager.deploy.targets.base import DeploySource
from amlpkg.trainer.signature import inspect_onnx

MODELS = "/models"  # where a scoring image's runtime reads its repository
MODELS_ROLE = "models"


def modelpack(source: DeploySource) -> OciModel | None:
    """The ModelPack artifact whose files the container needs, or None (the image has them)."""
    oci = source.oci
    return oci if oci is not None and oci.kind == "modelpack" else None


def served(source: DeploySource) -> tuple[str, dict[str, Any]]:
    """``(model name, signature)`` the revision serves, for the smoke test."""
    if source.model is not None:
        return source.model.name, source.model.signature
    assert source.oci is not None and source.model_file is not None
    signature, _ = inspect_onnx(source.model_file)
    return source.oci.name, signature


def volume_name(deployment: str, revision_id: str) -> str:
    """``amlpkg-<deployment>-models-<revision>-<random>`` for revision ``NAME:N``."""
    revision = revision_id.rpartition(":")[2] or "0"
    return f"amlpkg-{deployment}-models-{revision}-{os.urandom(3).hex()}"


def mount(volume: str) -> Any:
    """The volume over ``/models``, not seeded from the image (its model stays hidden)."""
    from docker.types import Mount

    return Mount(target=MODELS, source=volume, type="volume", no_copy=True)


def _archive(repository: Path, dest: Path) -> None:
    """``repository``'s files as a tar readable by the runtime's user (root-owned, 0644)."""
    with tarfile.open(dest, "w") as archive:
        for path in sorted(repository.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            info = archive.gettarinfo(str(path), path.relative_to(repository).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)


def create_with_models(
    client: Any, options: dict[str, Any], model: OciModel, revision_id: str
) -> tuple[Any, str]:
    """Create (not start) the revision's container with a fresh models volume filled from
    ``model``; ``(container, volume name)``."""
    deployment = options["labels"][sw.LABEL]
    name = volume_name(deployment, revision_id)
    client.volumes.create(name=name, labels=sw.labels(deployment, MODELS_ROLE))
    created = {k: v for k, v in options.items() if k != "detach"}
    created["mounts"] = [*created.get("mounts", []), mount(name)]
    try:
        container = client.containers.create(**created)
    except Exception:
        remove_volume(client, name)
        raise
    with tempfile.TemporaryDirectory(prefix="amlpkg-models-") as tmp:
        tar = Path(tmp) / "models.tar"
        _archive(model.repository, tar)
        with tar.open("rb") as data:
            container.put_archive(MODELS, data)
    return container, name


def remove_volume(client: Any, name: str | None) -> None:
    """Remove a models volume (gone already: nothing to do)."""
    import docker

    if not name:
        return
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.volumes.get(name).remove(force=True)


def remove_all(client: Any, deployment: str) -> None:
    """Every models volume of ``deployment`` (after its containers are removed)."""
    import docker

    found = client.volumes.list(filters={"label": f"{sw.LABEL}={deployment}"})
    for volume in found:
        if (volume.attrs.get("Labels") or {}).get(sw.ROLE) == MODELS_ROLE:
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
