"""Put an image together in a registry: the base's layers (mounted or copied), ours, the
config, the manifest, a multi-platform index, and OCI 1.1 referrers (SBOM, provenance)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.oci_builder.layers import LAYER_GZIP
from amlpkg.packager.build.oci_builder.registry_io import ImageRef, OciRegistry, manifest_bytes
from amlpkg.packager.oci.registry import EMPTY_JSON, INDEX, MANIFEST, descriptor

MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_LAYER_BYTES = 16 * 1024**3
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_EMPTY = b"{}"


@dataclass(frozen=True)
class BaseImage:
    """A base image of one platform, pinned by the digest of its manifest."""

    ref: ImageRef
    config: dict[str, Any]
    layers: list[dict[str, Any]]


def _oci_layer(desc: dict[str, Any]) -> dict[str, Any]:
    """A base layer's descriptor with Docker's media type replaced by OCI's (same bytes)."""
    media = LAYER_GZIP if desc.get("mediaType") == _DOCKER_LAYER else desc.get("mediaType")
    return {"mediaType": media, "digest": desc["digest"], "size": desc["size"]}


def pull_base(ref: ImageRef, platform: str) -> BaseImage:
    """Manifest and config of ``ref`` for ``platform`` (an index is followed to it)."""
    os_name, arch = platform.split("/")
    with OciRegistry(ref) as registry:
        manifest, digest = registry.manifest(ref.target)
        if manifest.get("manifests") is not None:  # an index: take the platform's image
            chosen = [
                m for m in manifest["manifests"]
                if (m.get("platform") or {}).get("architecture") == arch
                and (m.get("platform") or {}).get("os") == os_name
            ]  # fmt: skip
            if not chosen:
                raise InvalidArgumentError(
                    f"the base image {ref} has no {platform} image",
                    hint="give a base image made for that platform",
                )
            digest = str(chosen[0]["digest"])
            manifest, _ = registry.manifest(digest)
        config = json.loads(registry.blob_bytes(manifest["config"], MAX_CONFIG_BYTES))
    if config.get("architecture") != arch:
        raise InvalidArgumentError(
            f"the base image {ref} is {config.get('os')}/{config.get('architecture')},"
            f" not {platform}",
            hint="give a base image made for that platform (--base-image / --base-image-arm64)",
        )
    return BaseImage(ref.pinned(digest), config, [_oci_layer(x) for x in manifest["layers"]])


def copy_base_layers(target: OciRegistry, base: BaseImage) -> None:
    """Make the base's layers present in ``target``'s repository (mount, else copy)."""
    same_host = base.ref.host == target.host
    for layer in base.layers:
        digest = str(layer["digest"])
        if target.has_blob(digest) or (
            same_host and target.mount_blob(digest, base.ref.repository)
        ):
            continue
        with OciRegistry(base.ref) as source, tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "layer"
            source.blob_to(layer, path, MAX_LAYER_BYTES)
            target.push_blob_file(path, digest, int(layer["size"]))


def index_document(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """An OCI image index of ``(platform, manifest)`` pairs."""
    manifests = []
    for platform, manifest in entries:
        os_name, arch = platform.split("/")
        body = manifest_bytes(manifest)
        manifests.append(descriptor(MANIFEST, body, platform={"architecture": arch, "os": os_name}))
    return {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}


def attach(registry: OciRegistry, subject: dict[str, Any], artifact_type: str, data: bytes) -> str:
    """Push ``data`` as an OCI 1.1 referrer of ``subject``; the referrer manifest's digest."""
    registry.push_blob(_EMPTY)
    registry.push_blob(data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_JSON, _EMPTY),
        "layers": [descriptor(artifact_type, data)],
        "subject": subject,
    }
    digest = registry.push_manifest(manifest)
    registry.add_referrer(
        str(subject["digest"]),
        {**descriptor(MANIFEST, manifest_bytes(manifest)), "artifactType": artifact_type},
    )
    return digest
