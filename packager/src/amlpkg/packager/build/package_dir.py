"""``amlpkg package`` / ``build --format dir|tar|triton``: the image's content without Docker.

A package folder holds what an image holds (``models/``, ``app/``, ``wheelhouse/``)
plus ``run.sh``, which makes a venv from the bundled wheelhouse on first start (no
network) and runs the server. ``--format tar`` packs that folder into a .tar.gz;
``--format triton`` writes a Triton model repository instead.
"""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path

from amlpkg.errors import AlreadyExistsError, InvalidArgumentError
from amlpkg.packager.build import records
from amlpkg.packager.build.api import lay_out, package_labels
from amlpkg.packager.build.options import BuildOptions, Hooks
from amlpkg.packager.build.records import Package
from amlpkg.packager.build.sites import BuildSite, WorkspaceSite
from amlpkg.packager.build.source import ModelSource
from amlpkg.packager.build.triton import config_pbtxt, write_repository
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import using_workspace

FOLDER_KIND = "folder"  # lineage node id: the absolute path written
RUN_SCRIPT = "run.sh"
RUN_SH = """#!/bin/sh
# Start the amlpkg scoring server from this folder, without Docker.
# The first start makes a venv from the bundled wheelhouse (no network needed).
# Options are passed to the server: ./run.sh --http-port 8000 --grpc-port 8001
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
VENV=${AMLPKG_VENV:-"$HERE/.venv"}
if [ ! -f "$VENV/.amlpkg-ready" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip "$VENV"
    PIP_WHEEL=$(ls "$HERE"/wheelhouse/pip-*.whl)
    "$VENV/bin/python" "$PIP_WHEEL/pip" install --quiet --no-index --no-cache-dir \\
        --disable-pip-version-check --find-links "$HERE/wheelhouse" \\
        -r "$HERE/wheelhouse/requirements.txt"
    touch "$VENV/.amlpkg-ready"
fi
export PYTHONPATH="$HERE/app${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV/bin/python" -m amlpkg.runtime --model-repository "$HERE/models" "$@"
"""


def _fresh(output: Path) -> Path:
    output = output.expanduser().resolve()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise AlreadyExistsError(
            f"{output} exists and is not an empty folder",
            hint="choose another --output or remove it first",
        )
    return output


def _make_tar(folder: Path, archive: Path) -> Path:
    tmp = archive.with_name(archive.name + ".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    tmp.replace(archive)  # a half-written archive never carries the final name
    return archive


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _write_dir(
    ws: Workspace, src: ModelSource, opts: BuildOptions, folder: Path, hooks: Hooks
) -> Path:
    lay_out(ws, src, opts, folder, hooks)
    (folder / RUN_SCRIPT).write_text(RUN_SH, encoding="utf-8")
    (folder / RUN_SCRIPT).chmod(0o755)
    return folder


def make_package(
    ws: Workspace,
    ref: str,
    options: BuildOptions,
    hooks: Hooks | None = None,
    *,
    site: BuildSite | None = None,
) -> Package:
    """Write a package folder (``dir``), tarball (``tar``) or Triton repo; record it.

    ``site`` is where the model comes from and the package is recorded (default: ``ws``).
    """
    hooks = hooks or Hooks()
    opts = options.resolved()
    if opts.format not in ("dir", "tar", "triton"):
        raise InvalidArgumentError(f"make_package writes dir, tar or triton, not {opts.format}")
    if opts.output is None:
        raise InvalidArgumentError(f"--format {opts.format} needs --output PATH")
    started = time.monotonic()
    site = site or WorkspaceSite(ws)
    src = site.resolve(ref, opts.flavor, use_variant=opts.use_variant)
    if opts.format == "triton":
        output = opts.output.expanduser().resolve()
        config = config_pbtxt(
            src.facts.name,
            src.version.signature,
            max_batch_size=opts.max_batch_size,
            provider=opts.flavor,
        )
        written = write_repository(
            output,
            name=src.facts.name,
            version=src.facts.version,
            model_file=src.model_file,
            config=config,
        )
    elif opts.format == "dir":
        written = _write_dir(ws, src, opts, _fresh(opts.output), hooks)
    else:
        archive = opts.output.expanduser().resolve()
        if archive.exists():
            raise AlreadyExistsError(f"{archive} exists already", hint="choose another --output")
        stem = archive.name.removesuffix(".gz").removesuffix(".tgz").removesuffix(".tar")
        staging = archive.parent / f".{stem}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            folder = _write_dir(ws, src, opts, staging / stem, hooks)
            written = _make_tar(folder, archive)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    hooks.on_status(f"wrote {written}")
    package = Package(
        id=records.new_package_id(),
        model_name=src.facts.name,
        model_version=src.facts.version,
        variant_id=src.variant_id,
        flavor=opts.flavor,
        platform=opts.platform or "",
        format=opts.format,
        path=str(written),
        size_bytes=_size(written),
        labels=package_labels(src, opts),
        build_seconds=round(time.monotonic() - started, 3),
    )
    return site.record(package, ((FOLDER_KIND, str(written)), "written_to"))


def build_package_dir(
    ref: str,
    output: Path,
    *,
    flavor: str = "cpu",
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    hooks: Hooks | None = None,
) -> Path:
    """A package folder for ``ref`` at ``output`` (made and recorded); its path.

    ``output/run.sh [server options]`` starts the server on this host.
    """
    with using_workspace(workspace, home) as ws:
        options = BuildOptions(flavor=flavor, format="dir", output=Path(output))
        package = make_package(ws, ref, options, hooks)
    assert package.path is not None
    return Path(package.path)
