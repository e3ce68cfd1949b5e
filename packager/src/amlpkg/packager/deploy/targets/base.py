"""The target interface every deployment target implements.

``plan`` has no side effects (it is ``--dry-run``): it returns the documents the
target would apply (manifests) and the steps it would take. Applying a revision is
one lifecycle for every target (``lifecycle.apply``: record it pending, start it,
switch, retire the older ones, mark it ready, or failed on any exception); a
target implements only its own steps of it. ``status`` compares the record with
what really runs; ``delete`` stops it and marks the record stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from amlpkg.errors import AmlpkgError
from amlpkg.packager.deploy.options import DeployOptions
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion

if TYPE_CHECKING:
    from amlpkg.packager.build.records import Package
    from amlpkg.packager.deploy.oci_source import OciModel


@dataclass(frozen=True)
class DeploySource:
    """What is deployed: a registered model version and/or a package or image."""

    text: str
    """The source as the user gave it (a model ref, a package folder, an image)."""
    model: ModelVersion | None = None
    model_file: Path | None = None
    package: str | None = None
    package_dir: Path | None = None
    image: str | None = None
    image_digest: str | None = None
    oci: OciModel | None = None
    """An ``oci://`` source: the pinned artifact and the model it holds."""
    built: Package | None = None
    """The newest image built from the model version (what runs when no image is named)."""

    @property
    def model_name(self) -> str | None:
        """The name the runtime serves the model under."""
        return None if self.model is None else self.model.name


OptionsT = TypeVar("OptionsT", bound=DeployOptions)


@dataclass(frozen=True)
class DeployRequest(Generic[OptionsT]):
    """One ``amlpkg deploy``: a deployment name, its source and the target's typed options."""

    name: str
    source: DeploySource
    options: OptionsT

    def config(self) -> dict[str, Any]:
        """What the record keeps: the source text and the options given (no secrets)."""
        return {"source": self.source.text, **self.options.recorded()}


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` found: what goes on the new revision's row, and handles to keep."""

    model: str | None = None
    package: str | None = None
    image: str | None = None
    image_digest: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """Added to the request's recorded config (e.g. the Docker host it resolved)."""
    live: dict[str, Any] = field(default_factory=dict)
    """Handles for the later steps (e.g. a connected client); become ``Revision.live``."""


@dataclass
class Revision(Generic[OptionsT]):
    """A revision on its way through the lifecycle; the target's steps fill it in."""

    request: DeployRequest[OptionsT]
    record: DeploymentRecord
    """The ``pending`` row of this revision."""
    previous: DeploymentRecord | None
    """The revision that served when this one was created (None for the first)."""
    state: dict[str, Any] = field(default_factory=dict)
    """What the record keeps for ``status``/``delete`` (JSON-ready)."""
    live: dict[str, Any] = field(default_factory=dict)
    """Handles the steps pass on (clients, containers); never recorded."""
    endpoint_http: str | None = None
    endpoint_grpc: str | None = None
    image_digest: str | None = None
    reason: str | None = None
    """The ``ready`` record's reason (e.g. the rollout status)."""
    switched: bool = False
    """Set by ``switch`` once traffic may reach this revision."""

    @property
    def id(self) -> str:
        """``NAME:REVISION``."""
        return self.record.id


@dataclass
class Plan:
    """What ``apply`` would do: human steps and the documents (file name -> text)."""

    target: str
    steps: list[str] = field(default_factory=list)
    documents: dict[str, str] = field(default_factory=dict)

    def write(self, folder: Path) -> list[Path]:
        """Write every document into ``folder`` (``--output DIR``); returns the paths."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.documents.items():
            path = folder / name
            path.write_text(text)
            paths.append(path)
        return paths


class Target(Protocol[OptionsT]):
    """A place deployments run, and its steps of the deployment lifecycle."""

    name: ClassVar[str]
    options_model: ClassVar[type[DeployOptions]]

    def plan(self, ws: Workspace, request: DeployRequest[OptionsT]) -> Plan:
        """The documents and steps ``apply`` would use, without side effects."""
        ...

    def prepare(self, ws: Workspace, request: DeployRequest[OptionsT]) -> Prepared:
        """Check everything that needs no side effect; nothing is recorded when it raises."""
        ...

    def start(self, ws: Workspace, rev: Revision[OptionsT]) -> None:
        """Make the new revision run beside the serving one, and verify it directly."""
        ...

    def switch(self, ws: Workspace, rev: Revision[OptionsT]) -> None:
        """Send traffic to the verified revision (set ``rev.switched`` once it may get some)."""
        ...

    def retire(self, ws: Workspace, rev: Revision[OptionsT], old: DeploymentRecord) -> None:
        """Stop ``old``, a revision that ``rev`` replaced."""
        ...

    def abort(self, ws: Workspace, rev: Revision[OptionsT]) -> None:
        """Undo what ``start``/``switch`` did, so the previous revision keeps serving.

        Called after a failure, best effort: it must not raise.
        """
        ...

    def release(self, ws: Workspace, rev: Revision[OptionsT]) -> None:
        """Close the handles in ``rev.live`` (after success or failure); must not raise."""
        ...

    def wrap(self, exc: Exception) -> AmlpkgError:
        """A foreign exception of a step as an amlpkg error a user can act on."""
        ...

    def status(self, ws: Workspace, record: DeploymentRecord) -> dict[str, Any]:
        """What really runs for ``record`` (live checks, not just the row)."""
        ...

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Stop what runs for the deployment of ``record``; returns the updated record."""
        ...
