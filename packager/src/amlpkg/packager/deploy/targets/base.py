"""The target interface every deployment target implements: plan, apply, status, delete.

``plan`` has no side effects (it is ``--dry-run``): it returns the documents the
target would apply (manifests) and the steps it would take. ``apply`` records a
revision (pending -> ready or failed) and verifies it; ``status`` compares the
record with what really runs; ``delete`` stops it and marks the record stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion


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

    @property
    def model_name(self) -> str | None:
        """The name the runtime serves the model under."""
        return None if self.model is None else self.model.name


@dataclass(frozen=True)
class DeployRequest:
    """One ``amlpkg deploy``: a deployment name, its source and the target's options."""

    name: str
    source: DeploySource
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        """An option, ``default`` when not given (None counts as not given)."""
        value = self.options.get(key)
        return default if value is None else value

    def config(self) -> dict[str, Any]:
        """What the record keeps: the source text and the options given."""
        given = {k: v for k, v in sorted(self.options.items()) if v is not None}
        return {"source": self.source.text, **given}


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


class Target(Protocol):
    """A place deployments run."""

    name: ClassVar[str]

    def plan(self, ws: Workspace, request: DeployRequest) -> Plan:
        """The documents and steps ``apply`` would use, without side effects."""
        ...

    def apply(self, ws: Workspace, request: DeployRequest) -> DeploymentRecord:
        """Record a new revision, make it run, verify it; raise after recording a failure."""
        ...

    def status(self, ws: Workspace, record: DeploymentRecord) -> dict[str, Any]:
        """What really runs for ``record`` (live checks, not just the row)."""
        ...

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Stop what runs for the deployment of ``record``; returns the updated record."""
        ...
