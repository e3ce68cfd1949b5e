"""Python base images in a registry, made from Debian's packages without running them.

``debootstrap --foreign`` (first stage) downloads the packages of bookworm minbase plus
Python and unpacks the required ones; the rest (Python, its libraries) are unpacked
here with ``dpkg-deb`` and ``tar``. No maintainer script and no binary of the image
runs, so the same recipe makes the amd64 and the arm64 base on an amd64 host without
emulation. The tree is written as one reproducible layer, pushed through the registry
API and tagged ``amlpkg/debian-python:3.11-bookworm-minbase-<arch>``: made once per
registry, then pinned by digest in every image built on it.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from amlpkg.errors import NotFoundError
from amlpkg.packager.build.base_image import MIRROR, PACKAGES, STRIP, SUITE
from amlpkg.packager.build.errors import BuildError, tail
from amlpkg.packager.build.oci_builder.layers import write_layer
from amlpkg.packager.build.oci_builder.registry_io import (
    CONFIG_TYPE,
    ImageRef,
    OciRegistry,
    image_manifest,
)

BASE_REPOSITORY = "amlpkg/debian-python"
BASE_TAG = "3.11-bookworm-minbase"
BASE_PYTHON = "3.11"
DEBIAN_ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
BASE_EPOCH = 0
TIMEOUT_S = 900
# What the first stage leaves that an image must not carry: its own scripts, the
# downloaded packages, device nodes (the engine provides /dev) and the /proc link.
_DROP = ("debootstrap", "var/cache/apt/archives", "dev", "proc")
_ENV = ["LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def _quiet(message: str) -> None:
    """Default status callback: say nothing."""


def base_ref(registry: str, platform: str) -> ImageRef:
    """Where the made base of ``platform`` lives in ``registry``."""
    arch = DEBIAN_ARCH[platform]
    return ImageRef(registry, BASE_REPOSITORY, f"{BASE_TAG}-{arch}", None)


def _run(argv: list[str], what: str, *, stdin: int | None = None) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, stdin=stdin, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what} took over {TIMEOUT_S} s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise BuildError(
            f"{what} failed (exit {done.returncode}):\n{tail(output)}",
            hint=f"check that {MIRROR} is reachable and that this runs as root; or pass"
            " --base-image/--base-image-arm64 with a Python 3.11 base in a registry",
        )


def unpack_debian(root: Path, arch: str, mirror: str = MIRROR) -> None:
    """bookworm minbase + Python for ``arch`` under ``root``, unpacked only."""
    for tool in ("debootstrap", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            raise BuildError(
                f"{tool} is not installed, so no base image can be made here",
                hint="apt-get install debootstrap, or pass --base-image with a base in a registry",
            )
    _run(
        ["debootstrap", "--foreign", f"--arch={arch}", "--variant=minbase",
         f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror],
        f"debootstrap --foreign --arch={arch}",
    )  # fmt: skip
    required = set((root / "debootstrap" / "required").read_text().split())
    for deb in sorted((root / "var/cache/apt/archives").glob("*.deb")):
        if deb.name.split("_")[0] in required:
            continue  # the first stage unpacked these already
        # dpkg-deb reads the archive only; tar keeps the merged-/usr links (bin -> usr/bin).
        fsys = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
        )
        assert fsys.stdout is not None
        try:
            _run(["tar", "-x", "--keep-directory-symlink", "-C", str(root), "-f", "-"],
                 f"unpacking {deb.name}", stdin=fsys.stdout.fileno())  # fmt: skip
        finally:
            fsys.stdout.close()
            fsys.wait(timeout=60)
    _finish(root)


def _finish(root: Path) -> None:
    for relative in _DROP:
        target = root / relative
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
    for relative in ("dev", "proc", "sys", "tmp"):
        (root / relative).mkdir(exist_ok=True)
    for relative in STRIP:
        target = root / relative
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            target.mkdir()
    # base-passwd's maintainer script would write these; copying its masters is the same.
    masters = root / "usr/share/base-passwd"
    for name in ("passwd", "group"):
        if not (root / "etc" / name).exists() and (masters / f"{name}.master").is_file():
            shutil.copyfile(masters / f"{name}.master", root / "etc" / name)


def make_base(registry: OciRegistry, platform: str, on_status: Callable[[str], None]) -> str:
    """Unpack, write and push the base of ``platform``; its manifest digest."""
    arch = DEBIAN_ARCH[platform]
    with tempfile.TemporaryDirectory(prefix="amlpkg-oci-base-") as scratch:
        root = Path(scratch) / "rootfs"
        on_status(f"making the {platform} Python base from Debian {SUITE} packages (unpack only)")
        unpack_debian(root, arch)
        layer = write_layer({"/": root}, Path(scratch) / "layer.tar.gz", BASE_EPOCH)
        shutil.rmtree(root)
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": _ENV, "Cmd": ["/usr/bin/python3"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        on_status(f"pushing the {platform} base ({layer.size / 1e6:.0f} MB)")
        registry.push_blob_file(layer.path, layer.digest, layer.size)
        registry.push_blob(config_bytes)
        manifest = image_manifest(CONFIG_TYPE, config_bytes, [layer.descriptor()])
        return registry.push_manifest(manifest, tag=base_ref(registry.host, platform).tag)


def ensure_base(
    registry_host: str, platform: str, on_status: Callable[[str], None] = _quiet
) -> ImageRef:
    """The made base of ``platform`` in ``registry_host``, pinned by digest (made if missing)."""
    where = base_ref(registry_host, platform)
    with OciRegistry(where) as registry:
        try:
            return where.pinned(registry.resolve(where))
        except NotFoundError:
            pass
        lock_path = Path(tempfile.gettempdir()) / f"amlpkg-oci-base-{DEBIAN_ARCH[platform]}.lock"
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be making it now
            try:
                return where.pinned(registry.resolve(where))
            except NotFoundError:
                return where.pinned(make_base(registry, platform, on_status))
