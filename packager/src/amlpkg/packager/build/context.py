"""Lay out what a scoring image (or a package folder) contains, on the host.

``<dest>/models/<name>/<version>/model.onnx`` + ``config.yaml`` (the runtime's
Triton layout), ``app/`` (amlpkg's runtime, unpacked from its wheel) and
``wheelhouse/`` (binary wheels + requirements.txt). An image build adds the
Dockerfile; a package folder adds ``run.sh``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from amlpkg.packager.build.recipe import APP_DIR, MODELS_DIR, WHEELHOUSE_DIR
from amlpkg.packager.build.wheelhouse import extract_runtime

_COMPLETE = ".complete"


def _link_or_copy(src: Path, dst: Path) -> None:
    # Hard links avoid copying hundreds of MB per build when the cache is on the same disk.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def add_model(
    dest: Path, model_file: Path, name: str, version: int, config: dict[str, Any]
) -> Path:
    """``<dest>/models/<name>/<version>/model.onnx`` (a copy) and ``<name>/config.yaml``."""
    model_dir = dest / MODELS_DIR / name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    # A copy, not a link: the store's file is shared and read-only.
    shutil.copyfile(model_file, version_dir / "model.onnx")
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True), "utf-8")
    return dest / MODELS_DIR


def add_wheelhouse(dest: Path, wheelhouse: Path) -> Path:
    """The cached wheelhouse's files under ``<dest>/wheelhouse``."""
    target = dest / WHEELHOUSE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(wheelhouse.iterdir()):
        if item.is_file() and item.name != _COMPLETE:
            _link_or_copy(item, target / item.name)
    return target


def add_app(dest: Path, amlpkg_wheel: Path) -> Path:
    """amlpkg's runtime part under ``<dest>/app``."""
    return extract_runtime(amlpkg_wheel, dest / APP_DIR)


def assemble(
    dest: Path,
    *,
    model_file: Path,
    model_name: str,
    model_version: int,
    config: dict[str, Any],
    wheelhouse: Path,
    amlpkg_wheel: Path,
) -> Path:
    """Everything but the Dockerfile/start script, laid out under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    add_model(dest, model_file, model_name, model_version, config)
    add_wheelhouse(dest, wheelhouse)
    add_app(dest, amlpkg_wheel)
    return dest
