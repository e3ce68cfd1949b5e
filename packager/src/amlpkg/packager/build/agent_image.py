"""``amlpkg build --flavor edge-agent``: the IoT Edge agent's own image (runtime + agent).

The same offline recipe as a scoring image (locally gathered wheelhouse, pip from its
wheel with ``--no-index``, a venv copied over from a throw-away stage), with the
amlpkg-core, amlpkg-runtime and amlpkg-edge-agent wheels built from this checkout and
no model: the agent downloads and verifies models at run time. It runs as user 10001
and keeps its state in ``/var/lib/amlpkg``, the folder the IoT Edge manifest mounts a
named volume on (a fresh volume takes the image folder's owner, so the agent can write).

The build is recorded as a lineage arrow ``edge_agent <platform> --pushed_as--> image
REPO@sha256:...`` (it holds no model version, so it is no package row), where
``--target iotedge`` finds the newest pushed one for a platform and pins it by digest.

Platforms: the wheelhouse is gathered for the image's platform on any host (pip's
``--platform``), but the Docker-daemon builder runs the ``RUN`` steps, so an arm64
image needs an engine that runs arm64 binaries (an arm64 host, or QEMU registered in
binfmt_misc); without one the build stops with that hint, and ``--output DIR`` keeps
the complete build context (Dockerfile, wheels, code) to build there.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.build import image
from amlpkg.packager.build.api import BUILT_AS, IMAGE_KIND, PUSHED_AS, build_scratch, cache_root
from amlpkg.packager.build.api import _amlpkg_version as amlpkg_version
from amlpkg.packager.build.context import add_wheelhouse
from amlpkg.packager.build.errors import WheelhouseError
from amlpkg.packager.build.flavors import FLAVORS, requirement_name, runtime_requirements
from amlpkg.packager.build.options import BuildOptions, Hooks, host_platform_name
from amlpkg.packager.build.recipe import (
    APP,
    APP_DIR,
    SOURCE_URL,
    USER_ID,
    VENV,
    WARM_IMPORTS,
    WHEELHOUSE_DIR,
    deps_stage,
    image_env,
    label_lines,
)
from amlpkg.packager.build.wheelhouse import (
    amlpkg_wheel,
    extract_runtime,
    gather_wheelhouse,
    pure_wheels,
)
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge, add_edge_in_tx, edges_from
from amlpkg.store.workspace import Workspace

AGENT_FLAVOR = "edge-agent"
AGENT_KIND = "edge_agent"  # lineage node id: the platform; arrows to each image built
AGENT_ROLES = ("core", "runtime", "edge-agent")
AGENT_DISTRIBUTIONS = tuple(f"amlpkg-{role}" for role in AGENT_ROLES)
STATE_DIR = "/var/lib/amlpkg"
# Extras of our own distributions the agent installs (the runtime verifies signatures).
_EXTRAS = {"amlpkg-runtime": ("signing",)}
AGENT_IMPORTS = (*WARM_IMPORTS, "azure.iot.device", "cryptography")
AGENT_COMMAND = ["python", "-m", "amlpkg.edge_agent"]
# azure-iot-device pins paho-mqtt<2, published as an sdist only: built here as a wheel.
SDIST_ONLY = ("paho-mqtt>=1.6.1,<2",)

Recorder = Callable[[str, str, str], None]
"""Records ``(platform, image, relation)``: the lineage arrow of one agent image built."""


def recorder(ws: Workspace) -> Recorder:
    """Record agent images in ``ws`` (the embedded path; a team server has its own route)."""

    def record(platform: str, image_id: str, relation: str) -> None:
        add_edge(ws, (AGENT_KIND, platform), (IMAGE_KIND, image_id), relation)

    return record


@dataclass(frozen=True)
class AgentImage:
    """What an agent image build made (``--json`` prints it)."""

    ref: str
    image_id: str
    repo_digest: str | None
    platform: str
    size_bytes: int
    labels: dict[str, str]
    build_seconds: float
    context: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


def wheel_requires(wheels: Path, distribution: str, extras: tuple[str, ...] = ()) -> list[str]:
    """Third-party ``Requires-Dist`` of ``distribution``'s wheel in ``wheels`` with ``extras``.

    Read from the wheel as built from the checkout, not from what is installed here
    (an editable install's metadata is only as new as its last install).
    """
    prefix = distribution.replace("-", "_") + "-"
    found = sorted(wheels.glob(f"{prefix}*.whl"))
    if not found:
        raise WheelhouseError(f"no wheel of {distribution} in {wheels.name}")
    with zipfile.ZipFile(found[0]) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8", errors="replace")
    needed = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line.split(":", 1)[1].strip().partition(";")
        if requirement_name(requirement).startswith("amlpkg"):
            continue
        if "extra ==" not in marker or any(f'extra == "{e}"' in marker for e in extras):
            needed.append(requirement.strip())
    return needed


def agent_requirements(wheels: Path) -> list[str]:
    """What the agent image installs: the three roles' requirements, ONNX Runtime for CPU."""
    lines: list[str] = []
    for distribution in AGENT_DISTRIBUTIONS:
        for line in wheel_requires(wheels, distribution, _EXTRAS.get(distribution, ())):
            if line not in lines:
                lines.append(line)
    return runtime_requirements(lines, FLAVORS[AGENT_FLAVOR])


def agent_labels(
    *, platform: str, amlpkg_version: str, created: float | None = None
) -> dict[str, str]:
    """OCI labels of the agent image; ``ai.amlpkg.component`` tells it from a scoring image."""
    stamp = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if created is None else created)
    )
    return {
        "org.opencontainers.image.title": "amlpkg edge agent",
        "org.opencontainers.image.version": amlpkg_version,
        "org.opencontainers.image.created": stamp,
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.description": "IoT Edge module: verified model swaps,"
        " reported state, store-and-forward telemetry",
        "ai.amlpkg.component": AGENT_FLAVOR,
        "ai.amlpkg.flavor": AGENT_FLAVOR,
        "ai.amlpkg.platform": platform,
        "ai.amlpkg.amlpkg.version": amlpkg_version,
    }


def render_agent_dockerfile(*, base_image: str, python_version: str, labels: dict[str, str]) -> str:
    """The agent image's Dockerfile (classic builder, nothing fetched from the network)."""
    flavor = FLAVORS[AGENT_FLAVOR]
    lines = [
        "# Generated by amlpkg build --flavor edge-agent. Layers: base, dependencies, amlpkg.",
        *deps_stage(
            base_image=base_image,
            flavor=flavor,
            python_version=python_version,
            warm_imports=AGENT_IMPORTS,
        ),
        "",
        "FROM base",
        f"COPY --from=deps {VENV} {VENV}",
        # Owned by the agent's user: a fresh named volume mounted here takes this owner.
        f"RUN mkdir -p {STATE_DIR} && chown {USER_ID}:{USER_ID} {STATE_DIR}",
        f"COPY {APP_DIR}/ {APP}/",
        *image_env(flavor, python_version),
        f"ENV AMLPKG_EDGE_CACHE={json.dumps(STATE_DIR)}",
        f"USER {USER_ID}:{USER_ID}",
        f"CMD {json.dumps(AGENT_COMMAND)}",
        *label_lines(labels),
        "",
    ]
    return "\n".join(lines)


def default_agent_tag(platform: str) -> str:
    """``amlpkg/edge-agent:<version>-<arch>``."""
    return f"amlpkg/edge-agent:{amlpkg_version()}-{platform.rsplit('/', 1)[-1]}"


def agent_wheels(ws: Workspace, opts: BuildOptions, hooks: Hooks) -> Path:
    """The folder of the three roles' wheels: ``--amlpkg-wheel``, else built from the checkout."""
    wheels = opts.amlpkg_wheel or amlpkg_wheel(
        cache_root(ws), roles=AGENT_ROLES, on_status=hooks.on_status
    )
    if not wheels.is_dir():
        raise InvalidArgumentError(
            f"--amlpkg-wheel {wheels.name} is not a folder",
            hint=f"the agent image needs a folder with the {', '.join(AGENT_DISTRIBUTIONS)} wheels",
        )
    return wheels


def lay_out_agent(ws: Workspace, opts: BuildOptions, dest: Path, hooks: Hooks) -> None:
    """Wheelhouse and the three roles' code under ``dest`` (the build context)."""
    assert opts.python_version is not None and opts.platform is not None
    assert opts.glibc is not None
    wheels = agent_wheels(ws, opts, hooks)
    house = gather_wheelhouse(
        agent_requirements(wheels),
        python_version=opts.python_version,
        platform=opts.platform,
        glibc=opts.glibc,
        cache_root=cache_root(ws),
        on_status=hooks.on_status,
        find_links=pure_wheels(SDIST_ONLY, cache_root(ws), hooks.on_status),
    )
    dest.mkdir(parents=True, exist_ok=True)
    for stale in (WHEELHOUSE_DIR, APP_DIR):  # a reused --output folder starts clean
        shutil.rmtree(dest / stale, ignore_errors=True)
    add_wheelhouse(dest, house)
    extract_runtime(wheels, dest / APP_DIR, AGENT_DISTRIBUTIONS)


_QEMU = {"linux/amd64": "qemu-x86_64", "linux/arm64": "qemu-aarch64"}


def check_engine_runs(platform: str, kept: Path | None) -> None:
    """Refuse, before the engine tries, a platform whose binaries this host cannot run.

    The classic builder runs ``RUN`` steps with the engine's own kernel: another
    architecture needs QEMU registered in binfmt_misc (or an engine on such a host).
    Without it the build would fail later with a misleading pip or exec error.
    """
    if (
        platform == host_platform_name()
        or Path(f"/proc/sys/fs/binfmt_misc/{_QEMU[platform]}").exists()
    ):
        return
    where = f"is kept in {kept}" if kept else "is kept with --output DIR"
    raise FailedPreconditionError(
        f"this Docker engine cannot run {platform} binaries (no {_QEMU[platform]} in"
        f" binfmt_misc), so it cannot build the RUN steps of a {platform} image",
        hint=f"the complete build context (Dockerfile, {platform} wheels, code) {where}: run"
        f" `docker build --platform {platform} -t TAG DIR` on a {platform} engine with a"
        f" {platform} Python 3.11 base (--base-image), or register QEMU (qemu-user-static)",
    )


def build_agent_image(
    ws: Workspace, options: BuildOptions, hooks: Hooks | None = None, record: Recorder | None = None
) -> AgentImage:
    """Build (and with ``push`` push) the edge agent image; record it in the lineage
    (of ``ws``, or through ``record``: a team server's)."""
    hooks = hooks or Hooks()
    opts = options.resolved()
    if opts.flavor != AGENT_FLAVOR or opts.format != "image":
        raise InvalidArgumentError(
            f"the edge agent is built as an image with --flavor {AGENT_FLAVOR}",
            hint="run `amlpkg build --flavor edge-agent` (no model, no --format)",
        )
    assert opts.base_image is not None and opts.python_version is not None
    assert opts.platform is not None
    started = time.monotonic()
    tag = opts.tag or default_agent_tag(opts.platform)
    image.split_ref(tag)
    dest = opts.output or build_scratch(ws, "agent-")
    try:
        lay_out_agent(ws, opts, dest, hooks)
        labels = agent_labels(platform=opts.platform, amlpkg_version=amlpkg_version())
        (dest / "Dockerfile").write_text(
            render_agent_dockerfile(
                base_image=opts.base_image, python_version=opts.python_version, labels=labels
            ),
            encoding="utf-8",
        )
        check_engine_runs(opts.platform, dest if opts.output else None)
        hooks.on_status(f"building {tag} from {opts.base_image} ({opts.platform})")
        built = image.build_image(
            dest, tag, platform=opts.platform, no_cache=opts.no_cache, on_step=hooks.on_step
        )
        if opts.push:
            hooks.on_status(f"pushing {tag}")
            built = replace(built, repo_digest=image.push_image(tag, on_status=hooks.on_status))
    finally:
        if opts.output is None:
            shutil.rmtree(dest, ignore_errors=True)
    if built.repo_digest:
        made = (built.repo_digest, PUSHED_AS)
    else:
        made = (f"{tag} ({built.id[:19]}, not pushed)", BUILT_AS)
    (record or recorder(ws))(opts.platform, *made)
    return AgentImage(
        ref=tag,
        image_id=built.id,
        repo_digest=built.repo_digest,
        platform=opts.platform,
        size_bytes=built.size,
        labels=built.labels,
        build_seconds=round(time.monotonic() - started, 3),
        context=str(opts.output) if opts.output else None,
    )


def newest_agent_image(ws: Workspace, platform: str) -> str | None:
    """``REPOSITORY@sha256:...`` of the newest agent image pushed for ``platform``, or None."""
    pushed = [e for e in edges_from(ws, (AGENT_KIND, platform)) if e.relation == PUSHED_AS]
    return pushed[-1].dst_id if pushed else None


def pushed_agent_images(ws: Workspace) -> dict[str, str]:
    """``{platform: REPOSITORY@sha256:...}``: the newest agent image pushed for each platform."""
    rows = ws.conn.execute(
        "SELECT src_id, dst_id FROM lineage_edges WHERE src_kind = ? AND relation = ?"
        " ORDER BY created, id",
        (AGENT_KIND, PUSHED_AS),
    ).fetchall()
    return {str(platform): str(image_id) for platform, image_id in rows}


def mirror_agent_images(ws: Workspace, images: dict[str, str]) -> None:
    """Make ``images`` (a team server's :func:`pushed_agent_images`) the newest pushed ones
    in ``ws``, a deploy's cache workspace of that server; no other pushed ones stay."""
    with write_tx(ws.conn) as conn:
        conn.execute(
            "DELETE FROM lineage_edges WHERE src_kind = ? AND relation = ?",
            (AGENT_KIND, PUSHED_AS),
        )
        for platform, image_id in images.items():
            add_edge_in_tx(conn, (AGENT_KIND, platform), (IMAGE_KIND, image_id), PUSHED_AS)
