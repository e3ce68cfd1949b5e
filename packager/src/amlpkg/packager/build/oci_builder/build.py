"""``amlpkg build --builder oci``: a scoring image written and pushed without a Docker engine.

Per platform (:mod:`.platforms`): the base is pulled by digest (made in the registry
when none is given), the wheels are installed on the host for that platform, and our
three layers (venv, amlpkg's runtime, the model) are written reproducibly; the config
carries the Docker builder's user, environment, command, health check and labels.
Several platforms make an OCI image index. Each image gets its SBOM and provenance as
OCI 1.1 referrers.
The same inputs and ``SOURCE_DATE_EPOCH`` give the same digest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build import api, records
from amlpkg.packager.build.context import add_model
from amlpkg.packager.build.flavors import check_platform, runtime_requirements
from amlpkg.packager.build.oci_builder.base import BASE_PYTHON
from amlpkg.packager.build.oci_builder.layers import Layer, write_layer
from amlpkg.packager.build.oci_builder.platforms import (
    BASE_DIGEST,
    BASE_NAME,
    ImageContent,
    PlatformBuild,
    PlatformImage,
    push_images,
)
from amlpkg.packager.build.oci_builder.registry_io import ImageRef, OciRegistry
from amlpkg.packager.build.options import BuildOptions, Hooks, host_platform_name
from amlpkg.packager.build.recipe import APP, MODELS, image_labels, model_config
from amlpkg.packager.build.records import Package
from amlpkg.packager.build.sites import BuildSite, WorkspaceSite
from amlpkg.packager.build.source import ModelSource
from amlpkg.packager.build.wheelhouse import amlpkg_wheel, extract_runtime, installed_requires
from amlpkg.packager.build.wheelhouse import source_root as checkout_root
from amlpkg.packager.repository import find_signature, place_signature
from amlpkg.store.workspace import Workspace

FALLBACK_EPOCH = 315532800  # 1980-01-01, the oldest time a zip (wheel) can hold
PLATFORMS_LABEL = "ai.amlpkg.oci.platforms"


@dataclass(frozen=True)
class OciOptions:
    """What ``--builder oci`` adds to :class:`BuildOptions`."""

    platforms: tuple[str, ...] = ()
    """Default: this host's platform."""
    base_image: str | None = None
    """A registry reference (an index is followed to each platform); default: the
    Debian Python base made in the tag's registry."""
    base_image_arm64: str | None = None
    source_date_epoch: int | None = None
    """Every timestamp; default: ``SOURCE_DATE_EPOCH``, else the checkout's commit time."""
    revision: str | None = None
    """amlpkg's revision in the labels; default: the checkout's commit."""


def source_date_epoch(explicit: int | None) -> int:
    """The build's epoch: explicit, else ``SOURCE_DATE_EPOCH``, else the commit's time."""
    if explicit is not None:
        return explicit
    configured = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if configured:
        if not configured.isdigit():
            raise InvalidArgumentError(
                f"SOURCE_DATE_EPOCH={configured!r} is not a number of seconds",
                hint="set it to a Unix time, e.g. $(git log -1 --format=%ct)",
            )
        return int(configured)
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", str(checkout_root()), "log", "-1", "--format=%ct"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return FALLBACK_EPOCH
    stamp = done.stdout.strip()
    return int(stamp) if done.returncode == 0 and stamp.isdigit() else FALLBACK_EPOCH


def chosen_platforms(oci: OciOptions) -> tuple[str, ...]:
    """The platforms to build (default: this host's), each once."""
    chosen = oci.platforms or (host_platform_name(),)
    if len(set(chosen)) != len(chosen):
        raise InvalidArgumentError(f"--platform lists a platform twice: {','.join(chosen)}")
    return tuple(chosen)


def _common_layers(
    ws: Workspace, src: ModelSource, opts: BuildOptions, scratch: Path, epoch: int
) -> tuple[Layer, Layer, Path]:
    """The platform-independent layers (amlpkg's runtime, the model) and the wheel folder."""
    wheels = opts.amlpkg_wheel or amlpkg_wheel(api.cache_root(ws))
    if not wheels.exists():
        raise InvalidArgumentError(
            f"no amlpkg wheels at {wheels.name}", hint="check --amlpkg-wheel (a folder of wheels)"
        )
    app = extract_runtime(wheels, scratch / "app")
    api.add_trust(opts, app)
    config = model_config(
        opts.flavor_spec(), providers=src.providers, max_batch_size=opts.max_batch_size
    )
    models = add_model(scratch / "model", src.model_file, src.facts.name, src.facts.version, config)
    version_dir = models / src.facts.name / str(src.facts.version)
    place_signature(ws, src.version.ref, version_dir, variant=src.variant_id)
    app_layer = write_layer({APP: app}, scratch / "app.tar.gz", epoch)
    model_layer = write_layer({MODELS: models}, scratch / "model.tar.gz", epoch)
    return app_layer, model_layer, wheels


def _amlpkg_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("amlpkg")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _labels(src: ModelSource, opts: BuildOptions, oci: OciOptions, epoch: int) -> dict[str, str]:
    revision = oci.revision
    if revision is None:
        revision = api.package_labels(src, opts)["org.opencontainers.image.revision"]
    return image_labels(
        src.facts,
        flavor=opts.flavor,
        amlpkg_version=_amlpkg_version(),
        revision=revision,
        created=epoch,
    ) | api.signature_labels(opts)


def build_oci_image(
    ws: Workspace,
    ref: str,
    options: BuildOptions,
    oci: OciOptions | None = None,
    hooks: Hooks | None = None,
    *,
    site: BuildSite | None = None,
) -> Package:
    """Build and push the image (or index) of ``ref`` without a Docker engine; record it.

    ``site`` is where the model comes from and the package is recorded (default: ``ws``,
    else a team server's :class:`~amlpkg.packager.build.remote.ServerSite`).
    """
    hooks, oci = hooks or Hooks(), oci or OciOptions()
    site = site or WorkspaceSite(ws)
    if options.tag is None:
        raise InvalidArgumentError(
            "--builder oci pushes as it builds: it needs --tag REGISTRY/NAME:TAG",
            hint="e.g. --tag 127.0.0.1:5000/iris:1",
        )
    target = ImageRef.parse(options.tag)
    platforms = chosen_platforms(oci)
    opts = BuildOptions(**{**options.__dict__, "platform": platforms[0], "base_image": None})
    opts = opts.resolved()
    flavor = opts.flavor_spec()
    if opts.flavor == "edge-agent":
        raise InvalidArgumentError(
            "the edge-agent flavor is the IoT Edge agent's own image, without a model",
            hint="amlpkg build --flavor edge-agent --builder oci --tag REGISTRY/NAME:TAG",
        )
    if flavor.installs_python:
        raise InvalidArgumentError(
            f"--builder oci builds the cpu flavor (and flavors whose base has Python),"
            f" not {opts.flavor}",
            hint="use the Docker builder (--builder docker) for this flavor",
        )
    for platform in platforms[1:]:
        check_platform(flavor, platform)
    python = options.python_version or BASE_PYTHON
    assert opts.glibc is not None
    epoch = source_date_epoch(oci.source_date_epoch)
    started = time.monotonic()
    src = site.resolve(ref, opts.flavor, use_variant=opts.use_variant)
    if opts.require_signature and find_signature(ws, src.version.ref, src.variant_id) is None:
        api.refuse_unsigned(src)
    labels = _labels(src, opts, oci, epoch)
    requirements = runtime_requirements(installed_requires(), flavor, api.image_extras(opts))
    step = hooks.counted(2 + 3 * len(platforms) + 1)
    scratch = api.build_scratch(ws, "oci-")
    try:
        step("writing the amlpkg and model layers")
        app_layer, model_layer, wheels = _common_layers(ws, src, opts, scratch, epoch)
        content = ImageContent(
            requirements, (app_layer, model_layer), lambda _platform: labels,
            app=scratch / "app", wheels=wheels, model=src.facts, ref=ref,
        )  # fmt: skip
        build = PlatformBuild(
            target=target, platforms=platforms, oci=oci, opts=opts, python=python,
            scratch=scratch, epoch=epoch, cache=api.cache_root(ws), hooks=hooks, step=step,
        )  # fmt: skip
        with OciRegistry(target) as registry:
            images, digest = push_images(registry, content, build)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _record(site, src, opts=opts, pushed=target.pinned(digest), images=images,
                   labels=labels, started=started)  # fmt: skip


def _record(
    site: BuildSite,
    src: ModelSource,
    *,
    opts: BuildOptions,
    pushed: ImageRef,
    images: list[PlatformImage],
    labels: dict[str, str],
    started: float,
) -> Package:
    """The ``packages`` row and its lineage arrows, as the Docker builder records them."""
    first = images[0]
    recorded = {
        **labels,
        BASE_NAME: f"{first.base.host}/{first.base.repository}",
        BASE_DIGEST: str(first.base.digest),
        PLATFORMS_LABEL: ",".join(f"{i.platform}={i.digest}" for i in images),
    }
    package = Package(
        id=records.new_package_id(),
        model_name=src.facts.name,
        model_version=src.facts.version,
        variant_id=src.variant_id,
        flavor=opts.flavor,
        platform=",".join(i.platform for i in images),
        format="image",
        image_ref=f"{pushed.host}/{pushed.repository}:{pushed.tag}",
        image_id=str(pushed.digest),
        repo_digest=pushed.by_digest(),
        size_bytes=first.size,
        labels=recorded,
        build_seconds=round(time.monotonic() - started, 3),
    )
    made = ((api.IMAGE_KIND, pushed.by_digest()), api.PUSHED_AS)
    return site.record(package, made)
