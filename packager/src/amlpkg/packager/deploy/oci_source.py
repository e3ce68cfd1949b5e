"""``oci://REGISTRY/REPO:TAG|@sha256:...`` as what a deploy serves, through the registry API.

Two kinds of artifact are read, both without a Docker daemon:

- a ModelPack model (``amlpkg push``): its layers are the model and its signed
  release file, the signature bundle is an OCI 1.1 referrer;
- an image that carries the model under ``/models`` (a KServe modelcar, or a
  scoring image from ``amlpkg build``, whose ``ai.amlpkg.model.*`` labels name it):
  the newest layer holding ``models/`` is unpacked (regular files only).

The reference is resolved to its manifest digest first and everything after is
fetched by digest and checked; the deploy records the pinned reference
(``oci://...@sha256:...``) as its source and package, so a rollback serves the same
bytes and ``amlpkg lineage`` shows the digest. Files land in
``<home>/cache/oci/<digest>/repo/<name>/<version>/`` (the runtime's layout), where a
second deploy of the same digest finds them. With ``trust`` the version folder must
hold a signature that verifies against it (the same check as ``amlpkg pull --trust``).
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from amlpkg.errors import IntegrityError, InvalidArgumentError, NotFoundError
from amlpkg.packager.oci import modelpack
from amlpkg.packager.oci.registry import Reference, Registry
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE, sha256_file
from amlpkg.store.lineage_edges import add_edge
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import MODEL_VERSION_KIND, ModelVersion, resolve_model_file

LABEL = "ai.amlpkg.model"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_FILES = 256
PUSHED_AS = "pushed_as"
PACKAGE_KIND = "package"


@dataclass(frozen=True)
class OciModel:
    """What an ``oci://`` source holds, pinned by its manifest digest."""

    reference: str
    """``oci://HOST/REPO@sha256:...`` (no tag: the digest is what was deployed)."""
    digest: str
    kind: str
    """``modelpack`` or ``image``."""
    name: str
    version: str
    sha256: str
    """Hex SHA-256 of ``model.onnx``."""
    repository: Path
    """The runtime-layout repository the files were written to."""
    signature_url: str | None = None
    """Registry blob URLs of the signature bundle and the signed release (ModelPack)."""
    release_url: str | None = None

    @property
    def image(self) -> str:
        """``HOST/REPO@sha256:...``: the form a container engine pulls."""
        return self.reference.removeprefix("oci://")

    @property
    def version_dir(self) -> Path:
        """``<repository>/<name>/<version>``."""
        return self.repository / self.name / self.version


def _checked_name(name: Any, version: Any, where: str) -> tuple[str, str]:
    """Name and version from a remote manifest, safe to use as folder names."""
    name, version = str(name or ""), str(version or "")
    if not _NAME.match(name) or not version.isdigit() or int(version) <= 0:
        raise IntegrityError(
            f"{where} names model {name[:80]!r} version {version[:20]!r}",
            hint="the artifact must name its model (letters, digits, _ . -) and a positive version",
        )
    return name, version


def _modelpack(
    registry: Registry, where: Reference, manifest: dict[str, Any], digest: str, root: Path
) -> OciModel:
    pinned = f"oci://{where.host}/{where.repo}@{digest}"
    config = json.loads(registry.blob_bytes(manifest["config"], modelpack.MAX_SMALL_BYTES))
    described = config.get("descriptor", {}) if isinstance(config, dict) else {}
    name, version = _checked_name(described.get("name"), described.get("version"), pinned)
    layers = {
        str(layer.get("annotations", {}).get(modelpack.FILEPATH, "")): layer
        for layer in manifest.get("layers", [])
    }
    if MODEL_FILE not in layers:
        raise IntegrityError(f"{pinned} has no {MODEL_FILE} layer")
    release = layers.get(RELEASE_FILE)
    signature_url = None
    for ref in registry.referrers(digest):
        if ref.get("artifactType") == modelpack.BUNDLE_TYPE:
            attached, _ = registry.manifest(str(ref["digest"]))
            if attached.get("subject", {}).get("digest") == digest and attached.get("layers"):
                signature_url = f"{registry.base}/blobs/{attached['layers'][0]['digest']}"
                break
    repository = root / "repo"
    modelpack.pull_model(pinned, repository / name / version)
    config = repository / name / "config.yaml"
    if not config.is_file():
        # The runtime's spin-waiting burns cores that other processes on the host need.
        config.write_text("allow_spinning: false\n")
    return OciModel(
        reference=pinned,
        digest=digest,
        kind="modelpack",
        name=name,
        version=version,
        sha256=str(layers[MODEL_FILE]["digest"]).removeprefix("sha256:"),
        repository=repository,
        signature_url=signature_url,
        release_url=None if release is None else f"{registry.base}/blobs/{release['digest']}",
    )


def _safe_member(member: tarfile.TarInfo) -> PurePosixPath | None:
    """The path under ``models/`` of a regular file member, or None (skipped)."""
    name = member.name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    path = PurePosixPath(name)
    if not member.isfile() or len(path.parts) < 2 or path.parts[0] != "models":
        return None
    inner = PurePosixPath(*path.parts[1:])
    if any(part in ("..", "") or part.startswith(".wh.") for part in inner.parts):
        return None
    return inner


def _unpack_models(registry: Registry, layers: list[dict[str, Any]], dest: Path) -> None:
    """The ``models/`` files of the newest layer that has any, into ``dest``."""
    with tempfile.TemporaryDirectory(prefix="oci-layer-") as scratch:
        for layer in reversed(layers):
            blob = Path(scratch) / "layer"
            registry.blob_to(layer, blob, modelpack.MAX_MODEL_BYTES)
            found = 0
            try:
                found = _extract_models(blob, dest)
            except tarfile.TarError as exc:
                raise IntegrityError(
                    f"layer {layer.get('digest')} is not a tar archive amlpkg can read: {exc}",
                    hint="layers must be tar, tar+gzip, bzip2 or xz (not zstd)",
                ) from None
            blob.unlink()
            if found:
                return
    raise NotFoundError("the image has no files under /models", hint="is it a modelcar image?")


def _extract_models(blob: Path, dest: Path) -> int:
    """Regular files under ``models/`` of one layer into ``dest``; how many."""
    found = 0
    with tarfile.open(blob, "r:*") as archive:
        for member in archive:
            inner = _safe_member(member)
            if inner is None:
                continue
            found += 1
            if found > MAX_FILES:
                raise IntegrityError(f"over {MAX_FILES} files under /models: refused")
            target = dest.joinpath(*inner.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None  # a regular file
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    return found


def _image(
    registry: Registry, where: Reference, manifest: dict[str, Any], digest: str, root: Path
) -> OciModel:
    pinned = f"oci://{where.host}/{where.repo}@{digest}"
    config = json.loads(registry.blob_bytes(manifest["config"], 4 * 1024 * 1024))
    labels = (config.get("config") or {}).get("Labels") or {}
    unpacked = root / "unpacked"
    if not (root / ".complete").is_file():
        shutil.rmtree(unpacked, ignore_errors=True)
        _unpack_models(registry, list(manifest.get("layers", [])), unpacked)
        (root / ".complete").write_text("ok\n")
    if labels.get(f"{LABEL}.name"):
        name, version = _checked_name(
            labels.get(f"{LABEL}.name"), labels.get(f"{LABEL}.version"), pinned
        )
    else:
        found = sorted(unpacked.glob(f"*/*/{MODEL_FILE}"))
        if len(found) != 1:
            raise NotFoundError(
                f"{pinned}: no single <name>/<version>/{MODEL_FILE} under /models",
                hint="label the image ai.amlpkg.model.name/version, or lay it out that way",
            )
        name, version = _checked_name(found[0].parent.parent.name, found[0].parent.name, pinned)
    model = unpacked / name / version / MODEL_FILE
    if not model.is_file():
        raise NotFoundError(f"{pinned}: /models/{name}/{version}/{MODEL_FILE} is missing")
    sha256 = sha256_file(model)[0]
    labelled = labels.get(f"{LABEL}.sha256")
    if labelled and labelled != sha256:
        raise IntegrityError(
            f"{pinned}: the model's sha256 {sha256[:12]}… is not the labelled {labelled[:12]}…",
            hint="the image's model does not match its labels: rebuild it",
        )
    return OciModel(pinned, digest, "image", name, version, sha256, unpacked)


def fetch(ws: Workspace, text: str) -> OciModel:
    """Resolve ``text`` to its digest and fetch (or find cached) its model files."""
    where = Reference.parse(text)
    registry = Registry(where)
    try:
        manifest, digest = registry.manifest(where.target)
        if not _SHA256.match(digest) or "layers" not in manifest:
            raise InvalidArgumentError(
                f"{text} is an image index or not a manifest",
                hint="name one platform's manifest by its digest (oci://HOST/REPO@sha256:...)",
            )
        root = ws.home / "cache" / "oci" / digest.removeprefix("sha256:")
        root.mkdir(parents=True, exist_ok=True)
        try:
            if manifest.get("artifactType") == modelpack.ARTIFACT_TYPE:
                return _modelpack(registry, where, manifest, digest, root)
            return _image(registry, where, manifest, digest, root)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # What a registry serves is input: a malformed manifest or config is refused.
            raise IntegrityError(
                f"{text} is not a well-formed artifact ({type(exc).__name__}: {exc})",
                hint="push it with `amlpkg push` (ModelPack) or as an image with /models",
            ) from None
    finally:
        registry.close()


def verify(model: OciModel, trust: Path) -> None:
    """The version folder's signature must verify against ``trust`` and name this model."""
    from amlpkg.runtime.signing import SignatureError, Trust

    if not (model.version_dir / SIGNATURE_FILE).is_file():
        raise SignatureError(
            f"{model.reference} carries no signature ({SIGNATURE_FILE}), but --trust asks for one",
            hint="sign the version (amlpkg models sign) and push it again",
        )
    verified = Trust(trust).verify_folder(model.version_dir)
    signed = verified.release
    if (signed.name, str(signed.version), signed.model_sha256) != (
        model.name,
        model.version,
        model.sha256,
    ):
        raise SignatureError(
            f"the signature is for {signed.name}:{signed.version}, not {model.name}:{model.version}"
        )


def registered(ws: Workspace, model: OciModel) -> tuple[ModelVersion, Path] | None:
    """The workspace's version with the same name, version and sha256 (for lineage)."""
    try:
        version, path = resolve_model_file(f"{model.name}:{model.version}", workspace=ws)
    except (NotFoundError, InvalidArgumentError):
        return None
    if version.sha256 != model.sha256:
        return None  # same name and number, other bytes: not this model
    add_edge(ws, (MODEL_VERSION_KIND, version.ref), (PACKAGE_KIND, model.reference), PUSHED_AS)
    return version, path


def image_labels(image: str) -> tuple[str, dict[str, str]]:
    """``(REPOSITORY@sha256:..., labels)`` of an image in a registry, by its manifest digest.

    ``image`` is ``HOST[:PORT]/REPO[:TAG|@sha256:...]`` (``latest`` when neither); read
    through the registry API, so it must have been pushed.
    """
    text = image if "@" in image or ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"
    try:
        where = Reference.parse(f"oci://{text}")
    except InvalidArgumentError:
        raise InvalidArgumentError(
            f"{image!r} is not an image in a registry",
            hint="name it REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:... (amlpkg build --push)",
        ) from None
    registry = Registry(where)
    try:
        manifest, digest = registry.manifest(where.target)
        if "config" not in manifest:
            raise InvalidArgumentError(
                f"{image} is an image index, not one image",
                hint="name the manifest of the device's platform by its digest",
            )
        config = json.loads(registry.blob_bytes(manifest["config"], 4 * 1024 * 1024))
    finally:
        registry.close()
    labels = (config.get("config") or {}).get("Labels") or {} if isinstance(config, dict) else {}
    return f"{where.host}/{where.repo}@{digest}", {str(k): str(v) for k, v in labels.items()}


def pin_image(image: str) -> str:
    """``REPOSITORY@sha256:...`` of ``image`` (as it is when it names a digest already)."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return image
    return image_labels(image)[0]
