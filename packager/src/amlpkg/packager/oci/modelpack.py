"""Push and pull signed model versions as CNCF ModelPack artifacts.

The model manifest (``artifactType application/vnd.cncf.model.manifest.v1+json``)
has one uncompressed raw layer per file of the signed version folder (``model.onnx``
as a weight, ``amlpkg-release.json`` as a weight config), each annotated with
``org.cncf.model.filepath`` and ``org.opencontainers.image.title``, and a config
blob in the ModelPack schema. The manifest's ``dev.amlpkg.*`` annotations carry the
opset, providers, quantization, signature and accuracy. The signature bundle and the
SLSA provenance are separate manifests whose ``subject`` is the model manifest (OCI
1.1 referrers), so signing never changes the model's digest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amlpkg.errors import IntegrityError, NotFoundError
from amlpkg.packager.oci.registry import (
    EMPTY_JSON,
    MANIFEST,
    Reference,
    Registry,
    descriptor,
)
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, resolve_model_file, using_workspace
from amlpkg.trainer.signing import (
    SignatureFiles,
    SignatureRecord,
    latest_signature,
)

ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG_RAW = "application/vnd.cncf.model.weight.config.v1.raw"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PROVENANCE_TYPE = "application/vnd.in-toto+json"
FILEPATH = "org.cncf.model.filepath"
TITLE = "org.opencontainers.image.title"
NS = "dev.amlpkg"
MAX_MODEL_BYTES = 8 * 1024**3
MAX_SMALL_BYTES = 1024 * 1024
# Layer paths come from whoever wrote the manifest: only these plain names are written.
_ALLOWED_FILES = {MODEL_FILE, RELEASE_FILE}
_EMPTY = b"{}"


@dataclass(frozen=True)
class Pushed:
    """What a push wrote: the model manifest and its referrers."""

    reference: str
    digest: str
    signature_digest: str | None
    provenance_digest: str | None


def _annotations(version: Any, signer: str | None, bundle: str | None) -> dict[str, str]:
    notes = {
        "org.opencontainers.image.created": datetime.fromtimestamp(version.created, UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "org.opencontainers.image.version": str(version.version),
        f"{NS}.model": version.ref,
        f"{NS}.opset": str(version.opset or ""),
        f"{NS}.providers": version.tags.get("providers", "cpu"),
        f"{NS}.quantization": version.tags.get("quantization", "none"),
        f"{NS}.accuracy": version.tags.get("accuracy_vs_fp32", "reference"),
        f"{NS}.signature": f"{signer} sha256:{bundle}" if signer else "unsigned",
    }
    return notes


@dataclass(frozen=True)
class PushSource:
    """What a push sends: a version, its ONNX file and its signature files when signed."""

    version: ModelVersion
    model_file: Path
    signed: tuple[SignatureRecord, SignatureFiles] | None


def push_model_version(
    ref: str,
    target: str,
    *,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
) -> Pushed:
    """Push version ``ref`` (with its signature and provenance when signed) to ``target``."""
    where = Reference.parse(target)
    with using_workspace(workspace, home) as ws:
        version, blob = resolve_model_file(ref, workspace=ws)
        try:
            record = latest_signature(version.ref, workspace=ws)
        except NotFoundError:
            record = None
        signed = None
        if record is not None:
            read = ws.artifacts.read_bytes
            files = SignatureFiles(
                read(record.bundle_sha256),
                read(record.release_sha256),
                read(record.provenance_sha256),
            )
            signed = (record, files)
        return push_source(PushSource(version, blob, signed), where)


def push_source(source: PushSource, where: Reference) -> Pushed:
    """Push ``source`` to ``where``: the model manifest, then signature and provenance referrers."""
    version = source.version
    record, signature = source.signed if source.signed is not None else (None, None)
    files = {MODEL_FILE: (WEIGHT_RAW, source.model_file.read_bytes())}
    if signature is not None:
        files[RELEASE_FILE] = (WEIGHT_CONFIG_RAW, signature.release)
    registry = Registry(where)
    try:
        layers = []
        for name, (media, data) in sorted(files.items()):
            registry.push_blob(data)
            layers.append(descriptor(media, data, annotations={FILEPATH: name, TITLE: name}))
        config = {
            "descriptor": {"name": version.name, "version": str(version.version)},
            "config": {"format": "onnx"},
            "modelfs": {"type": "layers", "diffIds": [layer["digest"] for layer in layers]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        registry.push_blob(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": descriptor(CONFIG_TYPE, config_bytes),
            "layers": layers,
            "annotations": _annotations(
                version,
                record.signer if record else None,
                record.bundle_sha256 if record else None,
            ),
        }
        digest = registry.push_manifest(manifest, tag=where.tag)
        subject = {"mediaType": MANIFEST, "digest": digest, "size": _size(manifest)}
        sig = prov = None
        if signature is not None:
            sig = _attach(registry, subject, BUNDLE_TYPE, signature.bundle)
            prov = _attach(registry, subject, PROVENANCE_TYPE, signature.provenance)
    finally:
        registry.close()
    return Pushed(f"oci://{where.host}/{where.repo}@{digest}", digest, sig, prov)


def _size(manifest: dict[str, Any]) -> int:
    return len(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def _attach(registry: Registry, subject: dict[str, Any], kind: str, data: bytes) -> str:
    """Push ``data`` as a referrer artifact of ``subject``; its manifest digest."""
    registry.push_blob(_EMPTY)
    registry.push_blob(data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": kind,
        "config": descriptor(EMPTY_JSON, _EMPTY),
        "layers": [descriptor(kind, data)],
        "subject": subject,
    }
    digest = registry.push_manifest(manifest)
    registry.add_referrer(
        subject["digest"],
        {"mediaType": MANIFEST, "digest": digest, "size": _size(manifest), "artifactType": kind},
    )
    return digest


@dataclass(frozen=True)
class Pulled:
    """What a pull wrote into the version folder."""

    digest: str
    files: list[str]
    provenance: bytes | None


def pull_model(source: str, dest: Path) -> Pulled:
    """Fetch a ModelPack artifact into ``dest`` (a runtime version folder) with its signature.

    Every blob's digest is checked before it is kept; only ``model.onnx`` and
    ``amlpkg-release.json`` may be named by layers (no path from the registry is
    trusted); the signature and provenance come from the referrers.
    """
    where = Reference.parse(source)
    registry = Registry(where)
    try:
        manifest, digest = registry.manifest(where.target)
        if manifest.get("artifactType") != ARTIFACT_TYPE:
            raise IntegrityError(
                f"{source} is not a ModelPack model (artifactType {ARTIFACT_TYPE})"
            )
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for layer in manifest.get("layers", []):
            name = str(layer.get("annotations", {}).get(FILEPATH, ""))
            if name not in _ALLOWED_FILES or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
                raise IntegrityError(f"{source}: layer file path {name[:80]!r} is refused")
            limit = MAX_MODEL_BYTES if name == MODEL_FILE else MAX_SMALL_BYTES
            registry.blob_to(layer, dest / name, limit)
            written.append(name)
        provenance = None
        for ref in registry.referrers(digest):
            kind = ref.get("artifactType")
            if kind not in (BUNDLE_TYPE, PROVENANCE_TYPE):
                continue
            attached, _ = registry.manifest(str(ref["digest"]))
            if attached.get("subject", {}).get("digest") != digest:
                continue  # a referrer index entry that does not point back here
            data = registry.blob_bytes(attached["layers"][0], MAX_SMALL_BYTES)
            if kind == BUNDLE_TYPE:
                (dest / SIGNATURE_FILE).write_bytes(data)
                written.append(SIGNATURE_FILE)
            else:
                provenance = data
        return Pulled(digest, written, provenance)
    finally:
        registry.close()
