"""The image a run's script runs in: its Python, its requirements and amlpkg.

Built offline like a scoring image (``amlpkg build``): the locally made Debian base,
a host-side wheelhouse of the requirements, pip run from its own wheel with
``--no-index``. amlpkg goes in as wheels built from this checkout: the core (with its
store) and the trainer with their dependencies, for ``amlpkg.log_*``; and every other
role whose tables the workspace may hold (an ``amlpkg.schema`` entry point here)
without its dependencies: opening a workspace checks its schema against the installed
roles' Alembic revisions, which need only SQLAlchemy and Alembic. Those roles' own
code is not meant to run in the container. The image's tag is a digest of all of
that, so a second run with the same environment reuses it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.build.base_image import LOCAL_BASE_PYTHON, LOCAL_BASE_TAG, ensure_local_base
from amlpkg.packager.build.errors import BuildError, WheelhouseError, tail
from amlpkg.packager.build.image import BuiltImage, build_image, inspect_image
from amlpkg.packager.build.wheelhouse import gather_wheelhouse, source_digest, source_root

VENV = "/opt/amlpkg/venv"
REPOSITORY = "amlpkg-run/env"
PIP_TIMEOUT_S = 900
GLIBC = (2, 36)  # Debian bookworm, the local base
MAX_REQUIREMENTS_BYTES = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _quiet(message: str) -> None:
    del message


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of ``path`` (comments and blanks dropped, options refused)."""
    if path.stat().st_size > MAX_REQUIREMENTS_BYTES:
        raise InvalidArgumentError(f"{path} is over {MAX_REQUIREMENTS_BYTES} bytes")
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise InvalidArgumentError(
                f"{path}: pip options such as {line.split()[0]!r} are not supported",
                hint="list plain requirements (name==version); images are built offline",
            )
        if not _NAME.match(line):
            raise InvalidArgumentError(f"{path}: {line!r} is not a requirement")
        lines.append(line)
    return lines


# The script API (amlpkg.log_*) and what it needs: installed with their dependencies.
SCRIPT_ROLES = {"amlpkg-core": ("store",), "amlpkg-trainer": ()}


def schema_roles() -> list[str]:
    """The installed distributions other than the script's that own workspace tables."""
    found = set()
    for entry in importlib.metadata.entry_points(group="amlpkg.schema"):
        if entry.dist is not None and entry.dist.name not in SCRIPT_ROLES:
            found.add(entry.dist.name)
    return sorted(found)


def _requires_dist(wheels: Path, distribution: str) -> list[str]:
    """``Requires-Dist`` of the wheel of ``distribution`` in ``wheels`` (as built, not as
    installed here: the checkout may have changed since)."""
    prefix = distribution.replace("-", "_") + "-"
    for wheel in sorted(wheels.glob(f"{prefix}*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode("utf-8", errors="replace")
        return [line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.startswith("Requires-Dist:")]  # fmt: skip
    raise WheelhouseError(f"no wheel of {distribution} in {wheels}")


def _third_party(wheels: Path, distribution: str, extras: tuple[str, ...]) -> list[str]:
    """The third-party requirements of ``distribution`` with ``extras``."""
    needed = []
    for text in _requires_dist(wheels, distribution):
        name = _NAME.match(text)
        if name is None or name.group(0).startswith("amlpkg"):
            continue
        requirement, _, marker = text.partition(";")
        if "extra ==" not in marker:
            needed.append(text)
        # pip would drop a line marked for an extra: keep the requirement alone.
        elif any(f'extra == "{e}"' in marker for e in extras):
            needed.append(requirement.strip())
    return needed


def _role_wheels(roles: list[str], cache_root: Path, on_status: Callable[[str], None]) -> Path:
    """Wheels of ``roles`` built from this checkout, cached by a digest of its sources."""
    root = source_root()
    key = hashlib.sha256(f"{source_digest(root)}:{','.join(roles)}".encode()).hexdigest()[:20]
    final = cache_root / "amlpkg-run-wheels" / key
    if (final / ".complete").is_file():
        return final
    on_status(f"building wheels of {', '.join(roles)} from this checkout")
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        out = scratch / "wheels"
        for role in roles:
            folder = role.removeprefix("amlpkg-")
            tree = scratch / folder
            # A copy: the checkout (shared) gets no build/ or egg-info folders.
            shutil.copytree(root / folder, tree, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info", "build"))  # fmt: skip
            done = subprocess.run(  # noqa: S603 - our interpreter, argv list
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--wheel-dir", str(out), str(tree)],
                capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise WheelhouseError(f"building the {role} wheel failed:\n{tail(done.stderr)}")
        (out / ".complete").touch()
        shutil.rmtree(final, ignore_errors=True)
        out.rename(final)
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def dockerfile(schema_only: list[str], base: str) -> str:
    """Install the wheelhouse's requirements and amlpkg's roles into a venv; nothing online."""
    pip = (
        f"{VENV}/bin/python $PIP/pip install --no-index --no-cache-dir"
        " --disable-pip-version-check --find-links /tmp/wheelhouse --find-links /tmp/amlpkg"
    )
    no_deps = f" && {pip} --no-deps {' '.join(schema_only)}" if schema_only else ""
    return "\n".join(
        [
            f"FROM {base}",
            "COPY wheelhouse /tmp/wheelhouse",
            "COPY amlpkg /tmp/amlpkg",
            f"RUN python3 -m venv --without-pip {VENV}"
            " && PIP=$(ls /tmp/wheelhouse/pip-*.whl)"
            f" && {pip} -r /tmp/wheelhouse/requirements.txt {' '.join(SCRIPT_ROLES)}"
            f"{no_deps} && rm -rf /tmp/wheelhouse /tmp/amlpkg",
            f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            " PYTHONUNBUFFERED=1 HOME=/tmp",
            "",
        ]
    )


def ensure_env_image(
    requirements: list[str],
    *,
    python_version: str,
    cache_root: Path,
    on_status: Callable[[str], None] = _quiet,
    host: str | None = None,
) -> BuiltImage:
    """The image for ``requirements`` on the local base, built unless it exists already.

    ``host``: the engine to build on (default ``DOCKER_HOST``); the wheels are gathered
    here and sent with the build context, so a remote engine needs no network either.
    """
    wanted = ".".join(python_version.split(".")[:2])
    if wanted != LOCAL_BASE_PYTHON:
        raise FailedPreconditionError(
            f"the run's environment is Python {wanted}; the local base image has"
            f" {LOCAL_BASE_PYTHON}",
            hint=f"run with Python {LOCAL_BASE_PYTHON}, or give an image: --target docker:IMAGE",
        )
    schema_only = schema_roles()
    base_id = ensure_local_base(on_status=on_status, host=host)
    wheels = _role_wheels([*SCRIPT_ROLES, *schema_only], cache_root, on_status)
    script = {r for role, ex in SCRIPT_ROLES.items() for r in _third_party(wheels, role, ex)}
    third_party = sorted(script | set(requirements))
    text = dockerfile(schema_only, LOCAL_BASE_TAG)
    key = hashlib.sha256(
        "\n".join([base_id, wheels.name, text, *third_party]).encode()
    ).hexdigest()[:16]
    tag = f"{REPOSITORY}:{key}"
    try:
        return inspect_image(tag, host=host)
    except BuildError:  # not built yet
        pass
    house = gather_wheelhouse(
        third_party,
        python_version=LOCAL_BASE_PYTHON,
        platform=f"linux/{'amd64' if platform.machine() == 'x86_64' else 'arm64'}",
        glibc=GLIBC,
        cache_root=cache_root,
        on_status=on_status,
    )
    with tempfile.TemporaryDirectory(prefix="amlpkg-run-env-") as scratch:
        context = Path(scratch)
        shutil.copytree(house, context / "wheelhouse")
        shutil.copytree(wheels, context / "amlpkg")
        (context / "Dockerfile").write_text(text, encoding="utf-8")
        on_status(f"building {tag}")
        return build_image(context, tag, host=host)
