"""``amlpkg build --builder oci``: a scoring image written and pushed without a Docker engine.

Per platform: the base is pulled by digest (made in the registry when none is given),
the wheels are installed on the host for that platform, and our three layers (venv,
amlpkg's runtime, the model) are written reproducibly; the config carries the Docker
builder's user, environment, command, health check and labels. Several platforms make
an OCI image index. Each image gets its SBOM and provenance as OCI 1.1 referrers.
The same inputs and ``SOURCE_DATE_EPOCH`` give the same digest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build import api, records
from amlpkg.packager.build.context import add_model
from amlpkg.packager.build.errors import BuildError
from amlpkg.packager.build.flavors import check_platform, runtime_requirements
from amlpkg.packager.build.oci_builder import provenance, sbom
from amlpkg.packager.build.oci_builder.base import BASE_PYTHON, ensure_base
from amlpkg.packager.build.oci_builder.config import Process, image_config
from amlpkg.packager.build.oci_builder.elf import foreign_binaries
from amlpkg.packager.build.oci_builder.layers import Layer, write_layer
from amlpkg.packager.build.oci_builder.push import (
    BaseImage,
    attach,
    copy_base_layers,
    index_document,
    pull_base,
)
from amlpkg.packager.build.oci_builder.registry_io import (
    CONFIG_TYPE,
    ImageRef,
    OciRegistry,
    image_manifest,
    manifest_bytes,
)
from amlpkg.packager.build.oci_builder.site import build_venv
from amlpkg.packager.build.options import BuildOptions, Hooks, host_platform_name
from amlpkg.packager.build.recipe import APP, MODELS, VENV, ModelFacts, image_labels, model_config
from amlpkg.packager.build.records import Package
from amlpkg.packager.build.sites import BuildSite, WorkspaceSite
from amlpkg.packager.build.source import ModelSource
from amlpkg.packager.build.wheelhouse import (
    amlpkg_wheel,
    extract_runtime,
    gather_wheelhouse,
    installed_requires,
)
from amlpkg.packager.build.wheelhouse import source_root as checkout_root
from amlpkg.packager.oci.registry import MANIFEST
from amlpkg.packager.repository import find_signature, place_signature
from amlpkg.store.workspace import Workspace

FALLBACK_EPOCH = 315532800  # 1980-01-01, the oldest time a zip (wheel) can hold
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
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


@dataclass(frozen=True)
class PlatformImage:
    """One platform's pushed image."""

    platform: str
    digest: str
    manifest: dict[str, object]
    base: ImageRef
    size: int


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


def base_for(platform: str, oci: OciOptions, host: str, hooks: Hooks) -> BaseImage:
    """The base of ``platform``: the one given, else the Debian Python base in ``host``."""
    given = oci.base_image_arm64 if platform == "linux/arm64" else None
    given = given or oci.base_image
    if given is not None:
        return pull_base(ImageRef.parse(given, "base image"), platform)
    return pull_base(ensure_base(host, platform, hooks.on_status), platform)


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
    images: list[PlatformImage] = []
    try:
        step("writing the amlpkg and model layers")
        app_layer, model_layer, wheels = _common_layers(ws, src, opts, scratch, epoch)
        with OciRegistry(target) as registry:
            for layer in (app_layer, model_layer):
                registry.push_blob_file(layer.path, layer.digest, layer.size)
            for platform in platforms:
                step(f"{platform}: base image")
                base = base_for(platform, oci, target.host, hooks)
                copy_base_layers(registry, base)
                venv, wheelhouse, venv_layer = platform_venv(
                    registry, requirements, platform=platform, opts=opts, python=python,
                    scratch=scratch, epoch=epoch, cache=api.cache_root(ws), hooks=hooks,
                    step=step)  # fmt: skip
                images.append(push_platform_image(
                    registry, base, platform=platform, opts=opts, python=python, labels=labels,
                    layers=[venv_layer, app_layer, model_layer], epoch=epoch,
                    tag=target.tag if len(platforms) == 1 else None))  # fmt: skip
                site_dirs = [venv / "lib" / f"python{python}" / "site-packages", scratch / "app"]
                attach_documents(
                    registry, target, image=images[-1], model=src.facts, ref=ref,
                    site_dirs=site_dirs,
                    wheel_dirs=[wheelhouse, wheels if wheels.is_dir() else wheels.parent],
                    labels=labels, epoch=epoch)  # fmt: skip
                shutil.rmtree(venv.parent, ignore_errors=True)
            step("pushing the index" if len(platforms) > 1 else "recording the build")
            digest = push_index(registry, target, images)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _record(site, src, opts=opts, pushed=target.pinned(digest), images=images,
                   labels=labels, started=started)  # fmt: skip


def platform_venv(
    registry: OciRegistry,
    requirements: list[str],
    *,
    platform: str,
    opts: BuildOptions,
    python: str,
    scratch: Path,
    epoch: int,
    cache: Path,
    hooks: Hooks,
    step: Callable[[str], None],
    find_links: Path | None = None,
) -> tuple[Path, Path, Layer]:
    """``platform``'s venv installed on the host (no emulation), checked for foreign
    binaries and pushed as a layer: ``(venv, wheelhouse, layer)``."""
    assert opts.glibc is not None
    step(f"{platform}: installing wheels for {platform} (no emulation)")
    wheelhouse = gather_wheelhouse(
        requirements, python_version=python, platform=platform, glibc=opts.glibc,
        cache_root=cache, on_status=hooks.on_status, find_links=find_links,
    )  # fmt: skip
    venv = build_venv(wheelhouse, scratch / platform.replace("/", "-") / "venv",
                      flavor=opts.flavor_spec(), platform=platform, python_version=python,
                      glibc=opts.glibc)  # fmt: skip
    wrong = foreign_binaries(venv, platform)
    if wrong:
        raise BuildError(
            f"binaries for another machine in the {platform} image: " + ", ".join(wrong[:5]),
            hint="a wheel without a manylinux build for this platform got in",
        )
    step(f"{platform}: writing and pushing layers")
    layer = write_layer({VENV: venv}, venv.parent / "venv.tar.gz", epoch)
    registry.push_blob_file(layer.path, layer.digest, layer.size)
    return venv, wheelhouse, layer


def push_index(registry: OciRegistry, target: ImageRef, images: list[PlatformImage]) -> str:
    """The digest to pin: the one image's (already tagged as ``target``), or that of an
    index of them all, pushed under ``target``'s tag."""
    if len(images) == 1:
        return images[0].digest
    index = index_document([(i.platform, i.manifest) for i in images])
    return registry.push_manifest(index, tag=target.tag)


def push_platform_image(
    registry: OciRegistry,
    base: BaseImage,
    *,
    platform: str,
    opts: BuildOptions,
    python: str,
    labels: dict[str, str],
    layers: list[Layer],
    epoch: int,
    tag: str | None,
    process: Process | None = None,
    history: tuple[str, ...] = ("venv (wheels installed on the host)", "amlpkg runtime", "model"),
) -> PlatformImage:
    """Push one platform's config and manifest over ``base`` and ``layers``.

    ``process`` is what the image runs (default: the scoring server); ``history``
    names each of ``layers``.
    """
    config = image_config(
        base_config=base.config,
        platform=platform,
        flavor=opts.flavor_spec(),
        python_version=python,
        require_signature=opts.require_signature,
        labels={**labels, BASE_NAME: f"{base.ref.host}/{base.ref.repository}",
                BASE_DIGEST: str(base.ref.digest)},
        diff_ids=[layer.diff_id for layer in layers],
        history=list(history),
        epoch=epoch,
        process=process,
    )  # fmt: skip
    registry.push_blob(config)
    manifest = image_manifest(
        CONFIG_TYPE,
        config,
        [*base.layers, *(layer.descriptor() for layer in layers)],
        {BASE_NAME: f"{base.ref.host}/{base.ref.repository}", BASE_DIGEST: str(base.ref.digest)},
    )
    digest = registry.push_manifest(manifest, tag=tag)
    size = sum(int(layer["size"]) for layer in manifest["layers"])
    return PlatformImage(platform, digest, manifest, base.ref, size)


def attach_documents(
    registry: OciRegistry,
    target: ImageRef,
    *,
    image: PlatformImage,
    model: ModelFacts | None,
    ref: str,
    site_dirs: list[Path],
    wheel_dirs: list[Path],
    labels: dict[str, str],
    epoch: int,
) -> None:
    """The SBOM and the provenance of one platform's image, as its referrers."""
    subject = {"mediaType": MANIFEST, "digest": image.digest,
               "size": len(manifest_bytes(image.manifest))}  # fmt: skip
    version = labels.get("ai.amlpkg.amlpkg.version", "")
    document = sbom.cyclonedx(
        image=target, platform=image.platform, site_dirs=site_dirs, wheel_dirs=wheel_dirs,
        base=image.base, model=model, epoch=epoch, tool_version=version,
    )  # fmt: skip
    attach(registry, subject, sbom.MEDIA_TYPE, document)
    statement = provenance.statement(
        image=target, digest=image.digest, platform=image.platform, base=image.base,
        model=model, model_ref=ref, flavor=labels.get("ai.amlpkg.flavor", ""),
        wheel_dirs=wheel_dirs, revision=labels["org.opencontainers.image.revision"],
        epoch=epoch, tool_version=version,
    )  # fmt: skip
    attach(registry, subject, provenance.MEDIA_TYPE, statement)


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
