"""The host-side wheelhouse: every wheel an image installs, gathered before the build.

HTTPS from inside containers may be intercepted and a build must not depend on
the network anyway, so wheels are downloaded on the host (``pip download`` for the
image's Python and platform, binary wheels only) and cached under the workspace
at ``<home>/cache/wheelhouse/<key>``; a rebuild reuses them without downloading.
amlpkg's own distributions that an image runs (amlpkg-core and amlpkg-runtime) are
built from this checkout's role folders (``pip wheel --no-deps``), cached by a digest
of their sources; no other role goes into an image.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from amlpkg.packager.build.errors import WheelhouseError, tail
from amlpkg.packager.build.flavors import pip_platform_tags, wheelhouse_key_parts

PIP_TIMEOUT_S = 1800
REQUIREMENTS_FILE = "requirements.txt"
_COMPLETE = ".complete"
# The role folders (each its own distribution) whose wheels an image installs.
IMAGE_ROLES = ("core", "runtime")
IMAGE_DISTRIBUTIONS = tuple(f"amlpkg-{role}" for role in IMAGE_ROLES)
_SOURCE_SUFFIXES = (".py", ".proto", ".sql", ".typed", ".toml", ".md", ".json")


def _quiet(message: str) -> None:
    """Default status callback: say nothing."""


def _run_pip(args: list[str], what: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WheelhouseError(f"{what} took over {PIP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise WheelhouseError(
            f"{what} failed (exit {done.returncode}):\n{tail(done.stdout + done.stderr)}",
            hint="check that the package index is reachable from this host and that every"
            " requirement has a binary wheel for the image's Python and platform",
        )


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _publish(scratch: Path, final: Path) -> Path:
    """Move a completed folder into the cache; a concurrent twin that won is kept."""
    (scratch / _COMPLETE).write_text("ok\n", encoding="utf-8")
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        scratch.rename(final)
    except OSError:
        if not (final / _COMPLETE).is_file():
            raise
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def gather_wheelhouse(
    requirements: list[str],
    *,
    python_version: str,
    platform: str,
    glibc: tuple[int, int],
    cache_root: Path,
    on_status: Callable[[str], None] = _quiet,
    find_links: Path | None = None,
) -> Path:
    """A folder with binary wheels for ``requirements`` (plus pip) and ``requirements.txt``.

    ``find_links``: a folder of wheels made here (see :func:`pure_wheels`) that pip may
    take too. Cached by everything that decides its content: a second call returns at once.
    """
    parts = wheelhouse_key_parts(requirements, python_version, platform, glibc)
    if find_links is not None:
        parts += sorted(f"find-links={w.name}" for w in find_links.glob("*.whl"))
    key = _digest(parts)
    final = cache_root / "wheelhouse" / key
    if (final / _COMPLETE).is_file():
        return final
    on_status(f"downloading wheels for CPython {python_version} {platform} (cached after)")
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        req_file = scratch / REQUIREMENTS_FILE
        req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        args = ["download", "--dest", str(scratch), "--only-binary=:all:"]
        args += ["--python-version", python_version, "--implementation", "cp"]
        for tag in pip_platform_tags(platform, glibc):
            args += ["--platform", tag]
        if find_links is not None:
            args += ["--find-links", str(find_links)]
        # pip itself runs from its wheel inside the image: the base needs no pip.
        _run_pip([*args, "-r", str(req_file), "pip"], "pip download")
        for wheel in sorted(scratch.glob("*.whl")):
            strip_debug_info(wheel)
        return _publish(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def pure_wheels(
    requirements: tuple[str, ...], cache_root: Path, on_status: Callable[[str], None] = _quiet
) -> Path:
    """Wheels built here of pure-Python requirements published only as sdists (cached).

    A wheelhouse takes binary wheels only (nothing is built inside an image); a
    pure-Python sdist (paho-mqtt 1.x) becomes a ``py3-none-any`` wheel, valid on any
    platform. Anything that builds into a platform wheel is refused.
    """
    final = cache_root / "pure-wheels" / _digest(sorted(requirements))
    if (final / _COMPLETE).is_file():
        return final
    on_status(f"building pure-Python wheels of {', '.join(requirements)}")
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".pure-", dir=final.parent))
    try:
        _run_pip(
            ["wheel", "--no-deps", "--wheel-dir", str(scratch), *requirements],
            f"building wheels of {', '.join(requirements)}",
        )
        platform_bound = [
            w.name for w in scratch.glob("*.whl") if not w.name.endswith("-none-any.whl")
        ]
        if platform_bound:
            raise WheelhouseError(
                f"{', '.join(platform_bound)} is not pure Python: it cannot be built here"
                " for another platform"
            )
        return _publish(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _strip(data: bytes, scratch: Path) -> bytes:
    target = scratch / "lib.so"
    target.write_bytes(data)
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["strip", "--strip-debug", str(target)], capture_output=True, timeout=120, check=False
    )
    # A strip that fails (say, a foreign architecture) leaves the library as it was.
    return target.read_bytes() if done.returncode == 0 else data


def strip_debug_info(wheel: Path) -> bool:
    """Drop DWARF debug sections from the wheel's shared libraries (RECORD kept valid).

    Some wheels (uvloop: 13 MB, 11 of them debug info) ship unstripped extension
    modules. ``strip --strip-debug`` keeps every symbol. Libraries that auditwheel
    rewrote with patchelf (vendored ``*.libs/`` folders, ``$ORIGIN`` run paths) are
    never touched: strip can break their program headers. Returns whether the wheel
    was rewritten; without ``strip`` on the host, wheels stay as they are.
    """
    if shutil.which("strip") is None:
        return False
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if any(".libs/" in n for n in names):
            return False
        debug = []
        for name in names:
            if ".so" in name.rsplit("/", 1)[-1]:
                data = archive.read(name)
                if b".debug_info" in data and b"$ORIGIN" not in data:
                    debug.append(name)
        if not debug:
            return False
        with tempfile.TemporaryDirectory() as scratch:
            members = {n: archive.read(n) for n in archive.namelist()}
            infos = {i.filename: i for i in archive.infolist()}
            for name in debug:
                members[name] = _strip(members[name], Path(scratch))
    record = next(n for n in members if n.endswith(".dist-info/RECORD"))
    lines = [_record_line(n, d) for n, d in members.items() if n != record]
    members[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    tmp = wheel.with_name(wheel.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in members.items():
            out.writestr(infos[name], data, compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(wheel)
    return True


def source_root(roles: tuple[str, ...] = IMAGE_ROLES) -> Path:
    """The checkout amlpkg runs from, to build the image's wheels from its role folders."""
    configured = os.environ.get("AMLPKG_SOURCE")
    import amlpkg

    # core/src/amlpkg/__init__.py in a checkout: three folders below its root.
    root = Path(configured) if configured else Path(amlpkg.__file__).resolve().parents[3]
    if not all((root / role / "pyproject.toml").is_file() for role in roles):
        raise WheelhouseError(
            "no amlpkg source checkout to build the image's runtime wheels from",
            hint="install amlpkg from a checkout (make install) or set AMLPKG_SOURCE to one",
        )
    return root


def _source_files(root: Path, roles: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for role in roles:
        files.append(root / role / "pyproject.toml")
        files += [
            p
            for p in (root / role / "src").rglob("*")
            if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts
        ]
    return sorted(files)


def source_digest(root: Path, roles: tuple[str, ...] = IMAGE_ROLES) -> str:
    """A digest of the image roles' sources: the cache key of their wheels."""
    hasher = hashlib.sha256()
    for path in _source_files(root, roles):
        hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:20]


def amlpkg_wheel(
    cache_root: Path,
    *,
    roles: tuple[str, ...] = IMAGE_ROLES,
    on_status: Callable[[str], None] = _quiet,
) -> Path:
    """A folder with the wheels of ``roles`` built from the checkout (cached by digest)."""
    root = source_root(roles)
    key = source_digest(root, roles)
    # The scoring image's roles keep their cache key; other sets are told apart by name.
    final = (
        cache_root / "amlpkg-wheels" / (key if roles == IMAGE_ROLES else f"{'+'.join(roles)}-{key}")
    )
    if (final / _COMPLETE).is_file():
        return final
    on_status(f"building the {', '.join(f'amlpkg-{r}' for r in roles)} wheels from this checkout")
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        out = Path(tempfile.mkdtemp(prefix=".wheels-", dir=final.parent))
        for role in roles:
            # Build from a copy so the checkout (shared by others) gets no build/ or egg-info.
            tree = scratch / role
            shutil.copytree(root / role, tree, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info", "build"))  # fmt: skip
            _run_pip(
                ["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(tree)],
                f"building the amlpkg-{role} wheel",
            )
        return _publish(out, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _image_wheels(wheels: Path, distributions: tuple[str, ...]) -> list[Path]:
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else [wheels]
    names = {w.name.split("-")[0].replace("_", "-").lower() for w in found}
    missing = [d for d in distributions if d not in names]
    if missing or not all(w.is_file() for w in found):
        raise WheelhouseError(
            f"{wheels.name} does not hold the wheels of {', '.join(missing or distributions)}",
            hint=f"point --amlpkg-wheel at a folder with the {' and '.join(distributions)}"
            " wheels, or leave it out to build them from this checkout",
        )
    return [w for w in found if w.name.split("-")[0].replace("_", "-").lower()
            in distributions]  # fmt: skip


def extract_runtime(
    wheels: Path, dest: Path, distributions: tuple[str, ...] = IMAGE_DISTRIBUTIONS
) -> Path:
    """Unpack the image roles' wheels (a folder of them, or one) into ``dest``.

    A pure-Python wheel unpacked onto ``sys.path`` is an installed package: with its
    metadata, ``importlib.metadata`` sees amlpkg-core and amlpkg-runtime there. The
    trainer, packager, collector and CLI are other distributions and stay out.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in _image_wheels(wheels, distributions):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if not name.endswith(("/", ".dist-info/RECORD")):
                    archive.extract(name, dest)
    return dest


def installed_requires() -> list[str]:
    """The third-party requirements of the image roles, from their installed metadata."""
    requires: list[str] = []
    for distribution in IMAGE_DISTRIBUTIONS:
        try:
            found = importlib.metadata.requires(distribution) or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise WheelhouseError(
                f"{distribution}'s package metadata is missing",
                hint="install amlpkg from a checkout: make install",
            ) from exc
        requires += [r for r in found if not r.lower().startswith("amlpkg")]
    return requires
