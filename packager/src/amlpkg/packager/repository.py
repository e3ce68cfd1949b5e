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
from amlpkg.packager.optimize.store import VARIANT_KIND
from amlpkg.release import RELEASE_FILE, SIGNATURE_FILE
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import (
    MODEL_VERSION_KIND,
    ModelVersion,
    resolve_model_file,
    using_workspace,
)
from amlpkg.trainer.signing import SignatureRecord, signature_of


def _place(source: Path, target: Path) -> None:
    """Hard-link the verified store file where possible (no copy of large models), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def find_signature(ws: Workspace, ref: str, variant: str | None = None) -> SignatureRecord | None:
    """The newest signature of version ``ref`` (of its ``variant`` when given), or None.

    ``ref`` is a resolved ``NAME:VERSION``; the version need not be registered in
    ``ws`` (a build against a team server copies the signature alone into its cache).
    """
    if variant is not None:
        return signature_of(ws, (VARIANT_KIND, variant))
    return signature_of(ws, (MODEL_VERSION_KIND, ref))


def place_signature(
    ws: Workspace, ref: str, version_dir: Path, *, variant: str | None = None
) -> bool:
    """Put the version's signature bundle and signed release file beside its model.onnx.

    ``variant``: the folder holds this optimized variant of ``ref``, so its own
    signature goes there (a version's signature covers the registered file only).
    The runtime (``--require-signature``) and the edge agent look for them there.
    False when it is not signed (nothing is written).
    """
    record = find_signature(ws, ref, variant)
    if record is None:
        return False
    (version_dir / RELEASE_FILE).write_bytes(ws.artifacts.read_bytes(record.release_sha256))
    (version_dir / SIGNATURE_FILE).write_bytes(ws.artifacts.read_bytes(record.bundle_sha256))
    return True


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
    A signed version gets its signature files beside its model.
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
            place_signature(ws, version.ref, target.parent)
            placed.append(version)
    return placed
