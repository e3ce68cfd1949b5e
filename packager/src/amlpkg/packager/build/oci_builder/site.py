"""The image's Python environment, installed on the host for the image's platform.

``pip install --target`` with ``--platform``/``--python-version``/``--only-binary=:all:``
takes each wheel of the wheelhouse for the image's platform and unpacks it: nothing is
compiled and nothing of the target architecture runs, so an arm64 environment is made
on an amd64 host without emulation. The folder becomes the site-packages of a virtual
environment written by hand (``pyvenv.cfg`` and ``bin/python`` links to the base's
``python3``), the same place the Docker builder's venv has. Reproducible: no bytecode
(CPython's marshal output depends on reference counts), no console scripts (their
shebangs name the host's interpreter), no ``direct_url.json``; pruned like the Docker
builder's install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from amlpkg.packager.build.errors import WheelhouseError, tail
from amlpkg.packager.build.flavors import Flavor, pip_platform_tags
from amlpkg.packager.build.recipe import NEVER_SERVED, REQUIREMENTS_FILE, VENV

PIP_TIMEOUT_S = 1800
_NOISE_FILES = ("direct_url.json",)
_NOISE_DIRS = ("__pycache__", "tests")


def site_packages(python_version: str) -> str:
    """The venv's site-packages inside the image."""
    return f"{VENV}/lib/python{python_version}/site-packages"


def pip_install_target(
    wheelhouse: Path,
    target: Path,
    *,
    platform: str,
    python_version: str,
    glibc: tuple[int, int],
) -> None:
    """Install the wheelhouse's ``requirements.txt`` into ``target`` for ``platform``."""
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install",
            "--target", str(target), "--no-index", "--find-links", str(wheelhouse),
            "--only-binary=:all:", "--no-compile", "--no-warn-script-location",
            "--python-version", python_version, "--implementation", "cp"]  # fmt: skip
    for tag in pip_platform_tags(platform, glibc):
        argv += ["--platform", tag]
    argv += ["-r", str(wheelhouse / REQUIREMENTS_FILE)]
    # No user configuration or cache may change what gets installed.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise WheelhouseError(f"pip install --target took over {PIP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise WheelhouseError(
            f"installing the wheels for {platform} failed:\n{tail(done.stdout + done.stderr)}",
            hint="every requirement needs a binary wheel for the image's Python and platform",
        )


def prune(site: Path, flavor: Flavor) -> None:
    """Drop what serving never loads, as the Docker builder does, and pip's host noise."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    for folder, dirs, files in os.walk(site, topdown=True):
        here = Path(folder)
        for name in [d for d in dirs if d in _NOISE_DIRS]:
            shutil.rmtree(here / name)
            dirs.remove(name)
        for name in files:
            if name.endswith((".pyi", ".pyc")) or name in _NOISE_FILES:
                (here / name).unlink()
    for pattern in (*flavor.prune, *NEVER_SERVED):
        for path in site.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def write_venv(venv: Path, python_version: str) -> Path:
    """A virtual environment around the base's ``/usr/bin/python3``; its site-packages."""
    site = venv / "lib" / f"python{python_version}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python_version}\n",
        encoding="utf-8",
    )
    bin_dir = venv / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "python3", f"python{python_version}"):
        (bin_dir / name).symlink_to("/usr/bin/python3")
    return site


def build_venv(
    wheelhouse: Path,
    venv: Path,
    *,
    flavor: Flavor,
    platform: str,
    python_version: str,
    glibc: tuple[int, int],
) -> Path:
    """The image's venv under ``venv`` (installed, pruned); returns ``venv``."""
    site = write_venv(venv, python_version)
    pip_install_target(
        wheelhouse, site, platform=platform, python_version=python_version, glibc=glibc
    )
    prune(site, flavor)
    return venv
