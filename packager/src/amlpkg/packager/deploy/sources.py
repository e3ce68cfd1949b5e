"""Turn what the user names (model ref, package folder, image) into a deploy source, and
lay out a Triton model repository for targets that run the runtime from files.

Model versions and packages come from a :class:`SourceSite`: the workspace the deploy
runs in (:class:`WorkspaceSite`), or a team server
(:class:`amlpkg.packager.deploy.remote.ServerSite`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.packager.deploy.targets.base import DeploySource
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, resolve_model_file
from amlpkg.trainer.signature import inspect_onnx

if TYPE_CHECKING:
    from amlpkg.packager.build.records import Package
    from amlpkg.packager.deploy.oci_source import OciModel

# Names a package folder may give its model repository (the folder itself also works).
_REPOSITORY_DIRS = ("model_repository", "models", "repository")


class SourceSite(Protocol):
    """Where a deploy reads model versions (and their files) and packages."""

    def model_file(self, ref: str) -> tuple[ModelVersion, Path]:
        """The version ``ref`` names and a verified local copy of its ONNX file."""
        ...

    def package(self, package_id: str) -> Package:
        """The package ``package_id``."""
        ...

    def packages(self, model_name: str) -> list[Package]:
        """The packages of a model, newest first."""
        ...

    def registered(self, model: OciModel) -> ModelVersion | None:
        """The version an ``oci://`` model is (same name, number and sha256), if any."""
        ...


class WorkspaceSite:
    """The workspace the deploy runs in."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def model_file(self, ref: str) -> tuple[ModelVersion, Path]:
        return resolve_model_file(ref, workspace=self.ws)

    def package(self, package_id: str) -> Package:
        from amlpkg.packager.build.records import get_package

        return get_package(self.ws, package_id)

    def packages(self, model_name: str) -> list[Package]:
        from amlpkg.packager.build.records import list_packages

        return list_packages(self.ws, model_name)

    def registered(self, model: OciModel) -> ModelVersion | None:
        from amlpkg.packager.deploy import oci_source

        found = oci_source.registered(self.ws, model)
        return None if found is None else found[0]


def resolve_source(
    ws: Workspace,
    text: str,
    *,
    image: str | None = None,
    trust: Path | None = None,
    site: SourceSite | None = None,
) -> DeploySource:
    """A package id (``pkg-...``), an ``oci://`` artifact, a package folder, or a model ref.

    ``trust`` (a PEM public key or root) asks for the source's signature to verify:
    only an ``oci://`` source carries one here. ``site`` is where versions and packages
    are read (default: ``ws``).
    """
    site = site or WorkspaceSite(ws)
    if text.startswith("oci://"):
        return _oci_source(ws, site, text, image, trust)
    if trust is not None:
        raise InvalidArgumentError(
            "--trust verifies oci:// sources; this source is not one",
            hint="deploy the version from the registry (amlpkg push, then oci://...), or drop"
            " --trust (`amlpkg models verify` checks a registered version)",
        )
    if text.startswith("pkg-"):
        return _package_source(site, text, image)
    path = Path(text).expanduser()
    if path.is_dir():
        return DeploySource(text=str(path.resolve()), package_dir=path.resolve(), image=image)
    version, model_file = site.model_file(text)
    return DeploySource(
        text=version.ref,
        model=version,
        model_file=model_file,
        image=image,
        built=_newest_image(site, version),
    )


def _newest_image(site: SourceSite, version: ModelVersion) -> Package | None:
    """The newest image package built from ``version``, or None."""
    for package in site.packages(version.name):
        if package.model_version == version.version and package.image_ref:
            return package
    return None


def _package_source(site: SourceSite, package_id: str, image: str | None) -> DeploySource:
    """A package built by ``amlpkg build``: its image, or its folder, and its model."""
    package = site.package(package_id)
    version, model_file = site.model_file(package.model_ref)
    folder = Path(package.path) if package.path and package.format != "image" else None
    return DeploySource(
        text=package.id,
        model=version,
        model_file=model_file,
        package=package.id,
        package_dir=folder if folder is not None and folder.is_dir() else None,
        image=image or package.repo_digest or package.image_ref,
        image_digest=package.repo_digest,
        built=_newest_image(site, version),
    )


def _oci_source(
    ws: Workspace, site: SourceSite, text: str, image: str | None, trust: Path | None
) -> DeploySource:
    """An ``oci://`` artifact, fetched by digest; the registered version it is, if any.

    The pinned reference is the source text (a rollback serves the same digest) and the
    package (lineage ``package -> deployment``); an image that carries the model is
    also what container targets run unless ``--image`` names another.
    """
    from amlpkg.packager.deploy import oci_source

    model = oci_source.fetch(ws, text)
    if trust is not None:
        oci_source.verify(model, trust)
    found = site.registered(model)
    own_image = model.image if model.kind == "image" else None
    return DeploySource(
        text=model.reference,
        model=found,
        model_file=model.version_dir / "model.onnx",
        package=model.reference,
        package_dir=model.repository,
        image=image or own_image,
        image_digest=model.digest if image is None and own_image else None,
        oci=model,
        built=None if found is None else _newest_image(site, found),
    )


def package_repository(package_dir: Path) -> Path:
    """The Triton-layout repository inside a package folder (or the folder itself)."""
    for name in _REPOSITORY_DIRS:
        if (package_dir / name).is_dir():
            return package_dir / name
    return package_dir


def repository_model(repository: Path) -> tuple[str, dict[str, Any]]:
    """``(model name, signature)`` of the single model in a repository (newest version)."""
    models = sorted(p for p in repository.iterdir() if p.is_dir()) if repository.is_dir() else []
    if len(models) != 1:
        raise InvalidArgumentError(
            f"{repository} holds {len(models)} models; a deployment serves exactly one",
            hint="point at a package folder or repository with one <model>/<version>/model.onnx",
        )
    versions = sorted(
        (p for p in models[0].iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    if not versions or not (versions[-1] / "model.onnx").is_file():
        raise NotFoundError(
            f"no <version>/model.onnx under {models[0]}",
            hint="a repository lays models out as <model>/<version>/model.onnx",
        )
    signature, _ = inspect_onnx(versions[-1] / "model.onnx")
    return models[0].name, signature


def materialize_repository(
    source: DeploySource, folder: Path, runtime_config: str | None = None
) -> tuple[Path, str, dict[str, Any]]:
    """A model repository for ``source`` under ``folder``: ``(repo, model name, signature)``.

    A model ref is copied (never linked: the store's file is read-only and verified)
    to ``<folder>/repo/<name>/<version>/model.onnx``; a package folder is used in place.
    """
    if source.package_dir is not None:
        repository = package_repository(source.package_dir)
        name, signature = repository_model(repository)
        return repository, name, signature
    assert source.model is not None and source.model_file is not None
    model = source.model
    target = folder / "repo" / model.name / str(model.version) / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.model_file, target)
    # The runtime's spin-waiting burns cores that other processes on the host need.
    config = runtime_config if runtime_config is not None else "allow_spinning: false\n"
    (folder / "repo" / model.name / "config.yaml").write_text(config)
    return folder / "repo", model.name, model.signature


def image_for(ws: Workspace, source: DeploySource) -> str:
    """The image to run: ``--image``, else the newest image built from the model version."""
    if source.image:
        return source.image
    package = source.built
    if package is not None:
        return str(package.repo_digest or package.image_ref)
    raise InvalidArgumentError(
        f"no image to deploy for {source.text}",
        hint="build one with `amlpkg build`, or name an image with --image",
    )


def package_for(ws: Workspace, source: DeploySource) -> str | None:
    """The package lineage node the deployed image comes from (None for a bare --image)."""
    if source.package is not None or source.image:
        return source.package
    return None if source.built is None else source.built.id
