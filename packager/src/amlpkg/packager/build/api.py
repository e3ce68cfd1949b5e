"""``amlpkg build``: a model version (or its chosen variant) into an image, folder or tarball.

Every format starts from the same content (model in the runtime's layout, amlpkg's
runtime, a host-side wheelhouse) and ends with a ``packages`` row and the lineage
arrow ``model_version --packaged_as--> package`` (``variant --packaged_as-->`` too
when a variant went in); a pushed image adds ``package --pushed_as--> image
REPO@sha256:...`` so ``amlpkg lineage`` shows the digest.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.build import context, image, records
from amlpkg.packager.build.flavors import SIGNING_EXTRA, runtime_requirements
from amlpkg.packager.build.options import BuildOptions, Hooks
from amlpkg.packager.build.recipe import (
    APP_DIR,
    LABEL_PREFIX,
    MODELS_DIR,
    TRUST_FILE,
    ModelFacts,
    image_labels,
    model_config,
    render_dockerfile,
)
from amlpkg.packager.build.records import Package
from amlpkg.packager.build.sites import BuildSite, WorkspaceSite
from amlpkg.packager.build.source import ModelSource
from amlpkg.packager.build.wheelhouse import amlpkg_wheel, gather_wheelhouse, installed_requires
from amlpkg.packager.build.wheelhouse import source_root as checkout_root
from amlpkg.packager.repository import find_signature, place_signature
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.provenance import git_state

IMAGE_KIND = "image"  # lineage node id: REPOSITORY@sha256:... (or the local image id)
PUSHED_AS = "pushed_as"
BUILT_AS = "built_as"


def cache_root(ws: Workspace) -> Path:
    """Where wheelhouses and amlpkg wheels are cached: ``<home>/cache``."""
    return ws.home / "cache"


def build_scratch(ws: Workspace, prefix: str) -> Path:
    """A new folder for one build's files under ``<home>/cache/build`` (the caller removes it)."""
    parent = cache_root(ws) / "build"
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def default_tag(facts: ModelFacts, flavor: str) -> str:
    """``amlpkg/<name>:<version>-<flavor>`` (lower case, as image references must be)."""
    return f"amlpkg/{facts.name.lower()}:{facts.version}-{flavor}"


def _amlpkg_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("amlpkg")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def lay_out(ws: Workspace, src: ModelSource, opts: BuildOptions, dest: Path, hooks: Hooks) -> None:
    """Model, config, amlpkg's runtime and the wheelhouse under ``dest`` (image and folder)."""
    assert opts.python_version is not None and opts.platform is not None
    assert opts.glibc is not None
    if opts.require_signature and find_signature(ws, src.version.ref, src.variant_id) is None:
        refuse_unsigned(src)  # before minutes of downloads
    flavor = opts.flavor_spec()
    requirements = runtime_requirements(installed_requires(), flavor, image_extras(opts))
    wheels = gather_wheelhouse(
        requirements,
        python_version=opts.python_version,
        platform=opts.platform,
        glibc=opts.glibc,
        cache_root=cache_root(ws),
        on_status=hooks.on_status,
    )
    wheel = opts.amlpkg_wheel or amlpkg_wheel(cache_root(ws), on_status=hooks.on_status)
    if not wheel.exists():
        raise InvalidArgumentError(
            f"no amlpkg wheels at {wheel}", hint="check --amlpkg-wheel (a wheel or a folder)"
        )
    config = model_config(flavor, providers=src.providers, max_batch_size=opts.max_batch_size)
    context.assemble(
        dest,
        model_file=src.model_file,
        model_name=src.facts.name,
        model_version=src.facts.version,
        config=config,
        wheelhouse=wheels,
        amlpkg_wheel=wheel,
    )
    version_dir = dest / MODELS_DIR / src.facts.name / str(src.facts.version)
    what = src.variant_id or src.version.ref
    if place_signature(ws, src.version.ref, version_dir, variant=src.variant_id):
        hooks.on_status(f"signature of {what} placed beside the model")
    add_trust(opts, dest / APP_DIR)


def refuse_unsigned(src: ModelSource) -> None:
    """An unsigned model cannot go into an image whose runtime requires signatures."""
    raise FailedPreconditionError(
        f"{src.variant_id or src.version.ref} is not signed, and the image's runtime"
        " would refuse to load it",
        hint=f"sign it first (amlpkg models sign {src.version.ref} --key KEY, or optimize"
        " --sign-key for a variant), or build without --require-signature",
    )


def image_extras(opts: BuildOptions) -> tuple[str, ...]:
    """amlpkg's extras an image of ``opts`` installs besides ``[runtime]``."""
    return (SIGNING_EXTRA,) if opts.require_signature else ()


def add_trust(opts: BuildOptions, app_dir: Path) -> None:
    """Ship the ``--trust`` key with amlpkg's code (at :data:`TRUST_PATH` in the image)."""
    if opts.require_signature and opts.trust is not None:
        app_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(opts.trust, app_dir / TRUST_FILE)


def checkout_revision() -> str | None:
    """The commit of the checkout amlpkg is built from, or None outside one."""
    try:
        revision, _ = git_state(checkout_root())
    except InvalidArgumentError:
        return None
    return revision


def package_labels(src: ModelSource, opts: BuildOptions) -> dict[str, str]:
    """OCI and lineage labels of what ``src`` is packaged into (revision: this checkout)."""
    revision = checkout_revision()
    labels = image_labels(
        src.facts, flavor=opts.flavor, amlpkg_version=_amlpkg_version(), revision=revision
    )
    return labels | signature_labels(opts)


def signature_labels(opts: BuildOptions) -> dict[str, str]:
    """Labels saying the image's runtime requires signatures, and whose."""
    if not opts.require_signature or opts.trust is None:
        return {}
    from amlpkg.runtime.signing import Trust

    return {
        f"{LABEL_PREFIX}.signature.required": "true",
        f"{LABEL_PREFIX}.signature.trust": Trust(opts.trust).signer,
    }


def build_image(
    ws: Workspace,
    ref: str,
    options: BuildOptions,
    hooks: Hooks | None = None,
    *,
    site: BuildSite | None = None,
) -> Package:
    """Build (and with ``push`` push) the scoring image of ``ref``; record it.

    ``site`` is where the model comes from and the package is recorded (default: ``ws``).
    """
    hooks = hooks or Hooks()
    site = site or WorkspaceSite(ws)
    opts = options.resolved()
    if opts.format != "image":
        raise InvalidArgumentError(f"build_image makes images, not {opts.format!r}")
    if opts.flavor == "edge-agent":
        raise InvalidArgumentError(
            "the edge-agent flavor is the IoT Edge agent's own image, without a model",
            hint="run `amlpkg build --flavor edge-agent` without a model reference",
        )
    assert opts.base_image is not None and opts.python_version is not None
    started = time.monotonic()
    src = site.resolve(ref, opts.flavor, use_variant=opts.use_variant)
    tag = opts.tag or default_tag(src.facts, opts.flavor)
    image.split_ref(tag)  # a bad tag fails before minutes of work
    dest = opts.output or build_scratch(ws, "ctx-")
    try:
        lay_out(ws, src, opts, dest, hooks)
        labels = package_labels(src, opts)
        dockerfile = render_dockerfile(
            base_image=opts.base_image,
            flavor=opts.flavor_spec(),
            python_version=opts.python_version,
            labels=labels,
            require_signature=opts.require_signature,
        )
        (dest / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        hooks.on_status(f"building {tag} from {opts.base_image} ({opts.platform})")
        built = image.build_image(
            dest, tag, platform=opts.platform, no_cache=opts.no_cache, on_step=hooks.on_step
        )
        if opts.push:
            hooks.on_status(f"pushing {tag}")
            # The digest the registry answered for this push, not any older one.
            digest = image.push_image(tag, on_status=hooks.on_status)
            built = replace(built, repo_digest=digest)
    finally:
        if opts.output is None:
            shutil.rmtree(dest, ignore_errors=True)
    package = Package(
        id=records.new_package_id(),
        model_name=src.facts.name,
        model_version=src.facts.version,
        variant_id=src.variant_id,
        flavor=opts.flavor,
        platform=opts.platform or "",
        format="image",
        image_ref=tag,
        image_id=built.id,
        repo_digest=built.repo_digest,
        path=str(opts.output) if opts.output else None,
        size_bytes=built.size,
        labels=built.labels,
        build_seconds=round(time.monotonic() - started, 3),
    )
    if built.repo_digest:
        made = ((IMAGE_KIND, built.repo_digest), PUSHED_AS)
    else:
        made = ((IMAGE_KIND, f"{tag} ({built.id[:19]}, not pushed)"), BUILT_AS)
    return site.record(package, made)
