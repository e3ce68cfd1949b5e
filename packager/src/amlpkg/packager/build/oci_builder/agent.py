"""``amlpkg build --flavor edge-agent --builder oci``: the edge agent's image, no Docker engine.

The same daemonless, reproducible recipe as a scoring image (:mod:`.platforms`), with the
agent's content: a venv of the core, runtime (with ``[signing]``) and edge-agent
requirements installed on the host for each platform (no emulation, so arm64 is built
on an amd64 host), the three roles' code, and ``/var/lib/amlpkg`` owned by the agent's
user (a fresh named volume mounted there takes this owner); no model. The config runs
``python -m amlpkg.edge_agent`` as user 10001, as the Docker builder's image does.

Several platforms make an OCI image index; each image gets its SBOM and provenance as
referrers. The build is recorded as ``edge_agent <platform> --pushed_as--> image
REPO@sha256:...`` for each platform (the index's digest when there are several), where
``--target iotedge`` finds it and pins it by digest.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build import api
from amlpkg.packager.build.agent_image import (
    AGENT_COMMAND,
    AGENT_DISTRIBUTIONS,
    AGENT_FLAVOR,
    SDIST_ONLY,
    STATE_DIR,
    AgentImage,
    Recorder,
    agent_labels,
    agent_requirements,
    agent_wheels,
    amlpkg_version,
    recorder,
)
from amlpkg.packager.build.flavors import check_platform
from amlpkg.packager.build.oci_builder.base import BASE_PYTHON
from amlpkg.packager.build.oci_builder.build import OciOptions, chosen_platforms, source_date_epoch
from amlpkg.packager.build.oci_builder.config import Process
from amlpkg.packager.build.oci_builder.layers import Layer, write_layer
from amlpkg.packager.build.oci_builder.platforms import (
    ImageContent,
    PlatformBuild,
    push_images,
)
from amlpkg.packager.build.oci_builder.registry_io import ImageRef, OciRegistry
from amlpkg.packager.build.options import BuildOptions, Hooks
from amlpkg.packager.build.recipe import APP, USER_ID
from amlpkg.packager.build.wheelhouse import extract_runtime, pure_wheels
from amlpkg.store.workspace import Workspace

AGENT_PROCESS = Process(AGENT_COMMAND, env={"AMLPKG_EDGE_CACHE": STATE_DIR})
HISTORY = ("venv (wheels installed on the host)", "agent state folder", "amlpkg runtime + agent")


def _options(options: BuildOptions, platforms: tuple[str, ...]) -> BuildOptions:
    if options.tag is None:
        raise InvalidArgumentError(
            "--builder oci pushes as it builds: it needs --tag REGISTRY/NAME:TAG",
            hint="e.g. --tag 127.0.0.1:5000/amlpkg-edge-agent:1",
        )
    if options.require_signature or options.max_batch_size:
        raise InvalidArgumentError(
            "the edge agent's image holds no model: --require-signature and --max-batch-size"
            " do not apply",
            hint="the agent verifies models with its own --trust; drop those options",
        )
    fields = {**options.__dict__, "flavor": AGENT_FLAVOR, "platform": platforms[0]}
    opts = BuildOptions(**{**fields, "base_image": None}).resolved()
    for platform in platforms[1:]:
        check_platform(opts.flavor_spec(), platform)
    return opts


def _shared_layers(wheels: Path, scratch: Path, epoch: int) -> tuple[Layer, Layer]:
    """The platform-independent layers: the state folder and the three roles' code."""
    app = extract_runtime(wheels, scratch / "app", AGENT_DISTRIBUTIONS)
    state = scratch / "state"
    state.mkdir()
    state_layer = write_layer(
        {STATE_DIR: state}, scratch / "state.tar.gz", epoch, owners={STATE_DIR: USER_ID}
    )
    return state_layer, write_layer({APP: app}, scratch / "app.tar.gz", epoch)


def build_oci_agent_image(
    ws: Workspace,
    options: BuildOptions,
    oci: OciOptions | None = None,
    hooks: Hooks | None = None,
    record: Recorder | None = None,
) -> AgentImage:
    """Build and push the edge agent's image (an index for several platforms); record it
    (in ``ws``, or through ``record``: a team server's)."""
    hooks, oci = hooks or Hooks(), oci or OciOptions()
    platforms = chosen_platforms(oci)
    opts = _options(options, platforms)
    assert opts.tag is not None and opts.glibc is not None
    target = ImageRef.parse(opts.tag)
    python = options.python_version or BASE_PYTHON
    epoch = source_date_epoch(oci.source_date_epoch)
    started = time.monotonic()
    wheels = agent_wheels(ws, opts, hooks)
    requirements = agent_requirements(wheels)
    built_here = pure_wheels(SDIST_ONLY, api.cache_root(ws), hooks.on_status)
    revision = oci.revision or api.checkout_revision() or "unknown"
    step = hooks.counted(1 + 3 * len(platforms) + 1)
    scratch = api.build_scratch(ws, "oci-agent-")

    def labels(platform: str) -> dict[str, str]:
        return agent_labels(platform=platform, amlpkg_version=amlpkg_version(), created=epoch) | {
            "org.opencontainers.image.revision": revision
        }

    try:
        step("writing the agent's code and state layers")
        content = ImageContent(
            requirements, _shared_layers(wheels, scratch, epoch), labels, app=scratch / "app",
            wheels=wheels, history=HISTORY, process=AGENT_PROCESS, find_links=built_here,
        )  # fmt: skip
        build = PlatformBuild(
            target=target, platforms=platforms, oci=oci, opts=opts, python=python,
            scratch=scratch, epoch=epoch, cache=api.cache_root(ws), hooks=hooks, step=step,
        )  # fmt: skip
        with OciRegistry(target) as registry:
            images, digest = push_images(registry, content, build)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pinned = target.pinned(digest).by_digest()
    for platform in platforms:
        (record or recorder(ws))(platform, pinned, api.PUSHED_AS)
    return AgentImage(
        ref=opts.tag,
        image_id=digest,
        repo_digest=pinned,
        platform=",".join(platforms),
        size_bytes=images[0].size,
        labels={**labels(platforms[-1]), "ai.amlpkg.platform": ",".join(platforms)},
        build_seconds=round(time.monotonic() - started, 3),
        context=None,
    )
