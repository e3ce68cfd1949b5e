"""One image per platform over its base, for ``--builder oci``: the scoring image's and the
edge agent's alike.

Per platform: the base is pulled by digest (made in the registry when none is given), the
venv is installed on the host for that platform (no emulation) and pushed as a layer, the
config and manifest go over the base, the venv and the image's own platform-independent
layers, and the SBOM and provenance are attached as referrers. :func:`push_images` runs
that for every platform and pins the result (one image, or an index of them);
:class:`ImageContent` is what differs between the kinds of image.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from amlpkg.packager.build.errors import BuildError
from amlpkg.packager.build.oci_builder import provenance, sbom
from amlpkg.packager.build.oci_builder.base import ensure_base
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
from amlpkg.packager.build.options import BuildOptions, Hooks
from amlpkg.packager.build.recipe import VENV, ModelFacts
from amlpkg.packager.build.wheelhouse import gather_wheelhouse
from amlpkg.packager.oci.registry import MANIFEST

if TYPE_CHECKING:
    from amlpkg.packager.build.oci_builder.build import OciOptions

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
RUNTIME_HISTORY = ("venv (wheels installed on the host)", "amlpkg runtime", "model")


@dataclass(frozen=True)
class PlatformImage:
    """One platform's pushed image."""

    platform: str
    digest: str
    manifest: dict[str, object]
    base: ImageRef
    size: int


def base_for(platform: str, oci: OciOptions, host: str, hooks: Hooks) -> BaseImage:
    """The base of ``platform``: the one given, else the Debian Python base in ``host``."""
    given = oci.base_image_arm64 if platform == "linux/arm64" else None
    given = given or oci.base_image
    if given is not None:
        return pull_base(ImageRef.parse(given, "base image"), platform)
    return pull_base(ensure_base(host, platform, hooks.on_status), platform)


@dataclass(frozen=True)
class ImageContent:
    """What one kind of image puts over its base and venv, and what it says about itself."""

    requirements: list[str]
    """The venv's requirements, installed for each platform."""
    layers: tuple[Layer, ...]
    """Platform-independent layers, pushed once, over the venv in every image."""
    labels: Callable[[str], dict[str, str]]
    """A platform's labels."""
    app: Path
    """amlpkg's code as laid out in the image (the SBOM reads its packages)."""
    wheels: Path
    """amlpkg's wheels (a folder, or a wheel in one): the SBOM's and provenance's inputs."""
    history: tuple[str, ...] = RUNTIME_HISTORY
    """A name for the venv layer, then for each of ``layers``."""
    process: Process | None = None
    """What the image runs; default: the scoring server."""
    model: ModelFacts | None = None
    ref: str = ""
    find_links: Path | None = None
    """More wheels for the venv (built here from sdists)."""


@dataclass(frozen=True)
class PlatformBuild:
    """What every platform's image of one build shares."""

    target: ImageRef
    platforms: tuple[str, ...]
    oci: OciOptions
    opts: BuildOptions
    python: str
    scratch: Path
    epoch: int
    cache: Path
    hooks: Hooks
    step: Callable[[str], None]
    """Called 3 times per platform, and once for the index."""


def push_images(
    registry: OciRegistry, content: ImageContent, build: PlatformBuild
) -> tuple[list[PlatformImage], str]:
    """Push ``content``'s image for each platform: ``(images, digest to pin)``."""
    for layer in content.layers:
        registry.push_blob_file(layer.path, layer.digest, layer.size)
    images: list[PlatformImage] = []
    for platform in build.platforms:
        build.step(f"{platform}: base image")
        base = base_for(platform, build.oci, build.target.host, build.hooks)
        copy_base_layers(registry, base)
        venv, wheelhouse, venv_layer = _platform_venv(registry, platform, content, build)
        labels = content.labels(platform)
        layers = [venv_layer, *content.layers]
        images.append(_push_image(registry, base, platform=platform, layers=layers,
                                  labels=labels, content=content, build=build))  # fmt: skip
        site_dirs = [venv / "lib" / f"python{build.python}" / "site-packages", content.app]
        wheels = content.wheels if content.wheels.is_dir() else content.wheels.parent
        attach_documents(
            registry, build.target, image=images[-1], model=content.model, ref=content.ref,
            site_dirs=site_dirs, wheel_dirs=[wheelhouse, wheels], labels=labels,
            epoch=build.epoch)  # fmt: skip
        shutil.rmtree(venv.parent, ignore_errors=True)
    build.step("pushing the index" if len(build.platforms) > 1 else "recording the build")
    return images, push_index(registry, build.target, images)


def _platform_venv(
    registry: OciRegistry, platform: str, content: ImageContent, build: PlatformBuild
) -> tuple[Path, Path, Layer]:
    """``platform``'s venv installed on the host (no emulation), checked for foreign
    binaries and pushed as a layer: ``(venv, wheelhouse, layer)``."""
    opts, python = build.opts, build.python
    assert opts.glibc is not None
    build.step(f"{platform}: installing wheels for {platform} (no emulation)")
    wheelhouse = gather_wheelhouse(
        content.requirements, python_version=python, platform=platform, glibc=opts.glibc,
        cache_root=build.cache, on_status=build.hooks.on_status, find_links=content.find_links,
    )  # fmt: skip
    venv = build_venv(wheelhouse, build.scratch / platform.replace("/", "-") / "venv",
                      flavor=opts.flavor_spec(), platform=platform, python_version=python,
                      glibc=opts.glibc)  # fmt: skip
    wrong = foreign_binaries(venv, platform)
    if wrong:
        raise BuildError(
            f"binaries for another machine in the {platform} image: " + ", ".join(wrong[:5]),
            hint="a wheel without a manylinux build for this platform got in",
        )
    build.step(f"{platform}: writing and pushing layers")
    layer = write_layer({VENV: venv}, venv.parent / "venv.tar.gz", build.epoch)
    registry.push_blob_file(layer.path, layer.digest, layer.size)
    return venv, wheelhouse, layer


def push_index(registry: OciRegistry, target: ImageRef, images: list[PlatformImage]) -> str:
    """The digest to pin: the one image's (already tagged as ``target``), or that of an
    index of them all, pushed under ``target``'s tag."""
    if len(images) == 1:
        return images[0].digest
    index = index_document([(i.platform, i.manifest) for i in images])
    return registry.push_manifest(index, tag=target.tag)


def _push_image(
    registry: OciRegistry,
    base: BaseImage,
    *,
    platform: str,
    layers: list[Layer],
    labels: dict[str, str],
    content: ImageContent,
    build: PlatformBuild,
) -> PlatformImage:
    """Push one platform's config and manifest over ``base`` and ``layers`` (tagged when
    it is the build's only image)."""
    opts = build.opts
    base_labels = {
        BASE_NAME: f"{base.ref.host}/{base.ref.repository}",
        BASE_DIGEST: str(base.ref.digest),
    }
    config = image_config(
        base_config=base.config,
        platform=platform,
        flavor=opts.flavor_spec(),
        python_version=build.python,
        require_signature=opts.require_signature,
        labels={**labels, **base_labels},
        diff_ids=[layer.diff_id for layer in layers],
        history=list(content.history),
        epoch=build.epoch,
        process=content.process,
    )
    registry.push_blob(config)
    manifest = image_manifest(
        CONFIG_TYPE, config, [*base.layers, *(layer.descriptor() for layer in layers)], base_labels
    )
    tag = build.target.tag if len(build.platforms) == 1 else None
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
