"""Lay workspace models out as a runtime model repository (Triton layout).

``<dest>/<name>/<version>/model.onnx`` for each registered model version, so the
runtime can serve workspace models by name (``amlpkg serve --model NAME:VERSION``)
and builds and deployments can package them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from amlpkg.errors import AlreadyExistsError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, resolve_model_file, using_workspace


def _place(source: Path, target: Path) -> None:
    """Hard-link the verified store file where possible (no copy of large models), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def materialize(
    refs: Iterable[str],
    dest: Path,
    *,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
) -> list[ModelVersion]:
    """Write each model ref (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``) into ``dest``.

    Two refs resolving to different versions of one name are both laid out (the
    runtime's version policy picks which serve); the same version twice is an error.
    """
    placed: list[ModelVersion] = []
    with using_workspace(workspace, home) as ws:
        for ref in refs:
            version, path = resolve_model_file(ref, workspace=ws)
            target = dest / version.name / str(version.version) / "model.onnx"
            if target.exists():
                raise AlreadyExistsError(
                    f"{version.ref} is named twice", hint="pass each model version once"
                )
            _place(path, target)
            placed.append(version)
    return placed
