"""Base images made locally: Debian bookworm minbase + Python 3.11, imported into Docker.

Where no public registry is reachable, ``python:3.11-slim`` cannot be pulled, so the
base is made with ``debootstrap`` from the Debian mirror the host's apt already uses,
stripped of documentation and package lists, and ``docker import``-ed under a tag.
It is made once per machine: a present tag is reused. A file lock keeps two
processes (two test sessions) from making it at the same time.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from amlpkg.packager.build.engine import docker_client
from amlpkg.packager.build.errors import BuildError, tail

LOCAL_BASE_TAG = "amlpkg/debian-python:3.11-bookworm-minbase"
# Its python3 is 3.11: the wheelhouse for this base targets CPython 3.11.
LOCAL_BASE_PYTHON = "3.11"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# No python3-pip: images install with pip run from its wheel in the wheelhouse, which
# keeps about 25 MB of pip/setuptools out of every image.
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Nothing at run time reads these; dropping them keeps the image small.
STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    # Tools for people, not servers: 2to3, pydoc's topics, ensurepip's bundled wheels
    # (a venv here is made --without-pip).
    "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data",
    "usr/lib/python3.11/distutils",
    "usr/lib/python3.11/test",
    # Time zone names: servers log in UTC, which needs no zone file.
    "usr/share/zoneinfo",
    "usr/share/python-wheels",
    # glibc's iconv charset modules: Python's codecs do not use them.
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/lib/aarch64-linux-gnu/gconv",
)
IMPORT_CHANGES = (
    "ENV LANG=C.UTF-8",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["/usr/bin/python3"]',
)
DEBOOTSTRAP_TIMEOUT_S = 900


def _quiet(message: str) -> None:
    """Default status callback: say nothing."""


def local_image_id(tag: str, host: str | None = None) -> str | None:
    """The id of the image ``tag`` of the engine at ``host`` (default ``DOCKER_HOST``), or
    None when the engine has no such image."""
    import docker

    client = docker_client(host=host)
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None
    finally:
        client.close()


def _debootstrap(root: Path, mirror: str) -> None:
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(root),
        mirror,
    ]
    if shutil.which("debootstrap") is None:
        raise BuildError(
            "debootstrap is not installed, so no local base image can be made",
            hint="apt-get install debootstrap, or pass --base-image with an image you have",
        )
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"debootstrap took over {DEBOOTSTRAP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise BuildError(
            f"debootstrap failed (exit {done.returncode}):\n{tail(done.stdout + done.stderr)}",
            hint=f"check that {mirror} is reachable and that this runs as root",
        )


def _strip(root: Path) -> None:
    for relative in STRIP:
        target = root / relative
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _import(root: Path, tarball: Path, tag: str, host: str | None) -> str:
    # Numeric owners and no filters: the tree must keep its devices, links and modes.
    with tarfile.open(tarball, "w") as archive:
        for child in sorted(root.iterdir()):
            archive.add(child, arcname=child.name)
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    client = docker_client(host=host)
    try:
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=version, changes=list(IMPORT_CHANGES)
        )
        return str(client.images.get(tag).id)
    finally:
        client.close()


def ensure_local_base(
    tag: str = LOCAL_BASE_TAG,
    *,
    mirror: str = MIRROR,
    on_status: Callable[[str], None] = _quiet,
    host: str | None = None,
) -> str:
    """The id of the local base image ``tag``, making it first when it is missing.

    Making it takes about a minute (debootstrap + import); later calls return at once.
    ``host``: the engine (default ``DOCKER_HOST``); debootstrap runs here, and the tree
    goes to that engine through the API, so a remote engine gets it too.
    """
    existing = local_image_id(tag, host)
    if existing is not None:
        return existing
    lock_path = Path(tempfile.gettempdir()) / f"amlpkg-base-{tag.replace('/', '_')}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be making it right now
        existing = local_image_id(tag, host)
        if existing is not None:
            return existing
        with tempfile.TemporaryDirectory(prefix="amlpkg-base-") as scratch:
            root = Path(scratch) / "rootfs"
            on_status(f"making base image {tag}: debootstrap {SUITE} (about a minute)")
            _debootstrap(root, mirror)
            _strip(root)
            on_status(f"importing {tag} into Docker")
            return _import(root, Path(scratch) / "rootfs.tar", tag, host)
