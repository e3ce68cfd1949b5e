"""Where ``optimize`` reads a model version and keeps its variants: a workspace or a team server.

The pipeline makes, measures and checks variants on this machine either way; only
these five steps touch a store. :class:`WorkspaceStore` is the embedded workspace;
:class:`amlpkg.packager.optimize.remote.ServerStore` the team server (the model is
downloaded, variant files and rows are sent back).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

from amlpkg.packager.optimize import data
from amlpkg.packager.optimize.store import Variant, insert_variants
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, get_model_version


class OptimizeStore(Protocol):
    """What ``optimize`` reads and writes."""

    def model_version(self, ref: str) -> ModelVersion:
        """The version ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` names."""
        ...

    def copy_model_file(self, version: ModelVersion, dest: Path) -> None:
        """Write the version's ONNX file to ``dest``, its sha256 checked."""
        ...

    def run_sample(self, version: ModelVersion) -> data.Sample | None:
        """A calibration sample the version's run kept, if any."""
        ...

    def put_file(self, path: Path) -> tuple[str, int]:
        """Keep a variant's file; answer ``(sha256, size)``."""
        ...

    def record(self, variants: list[Variant]) -> None:
        """Record the variants and their lineage edges, all or none."""
        ...


class WorkspaceStore:
    """The embedded workspace (or a server's own, when the server calls the pipeline)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def model_version(self, ref: str) -> ModelVersion:
        return get_model_version(ref, workspace=self.ws)

    def copy_model_file(self, version: ModelVersion, dest: Path) -> None:
        shutil.copyfile(self.ws.artifacts.verified_path(version.sha256), dest)

    def run_sample(self, version: ModelVersion) -> data.Sample | None:
        return data.sample_from_run(self.ws, version)

    def put_file(self, path: Path) -> tuple[str, int]:
        return self.ws.artifacts.put_file(path)

    def record(self, variants: list[Variant]) -> None:
        insert_variants(self.ws, variants)
