"""Signatures made on users' machines: kept and served by the server, never made here.

``amlpkg models sign NAME:VER --key K`` against a server signs on the user's machine
(the key never leaves it) and sends the bundle, the signed release file and the SLSA
provenance statement; the server checks that they speak of this version's file,
then keeps them with the trainer's own
:func:`amlpkg.trainer.signing.record_signature` (artifacts, record, lineage edge),
as an embedded workspace does. ``models verify``, ``build`` and ``push`` read them
back; ``verify`` records its outcome here. The signature itself is checked by
whoever trusts the signer's key, not by the server (it has no key to trust).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, StringConstraints

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.release import MAX_RELEASE_BYTES, MODEL_FILE, RELEASE_FILE, Release
from amlpkg.server.deps import API, READ, WRITE, WorkspaceDep
from amlpkg.server.routers.registry import VersionNumber
from amlpkg.store.lineage_edges import edges_from
from amlpkg.store.workspace import Workspace
from amlpkg.trainer import registry
from amlpkg.trainer.registry import MODEL_VERSION_KIND, ModelVersion
from amlpkg.trainer.signing import (
    SIGNATURE_KIND,
    SignatureFiles,
    SignatureRecord,
    read_signature,
    record_signature,
    record_verification,
    signature_of,
)

router = APIRouter(prefix=API, tags=["signatures"], dependencies=READ)
MAX_PART = 256 * 1024  # a bundle or a provenance statement is a few kB
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class SignatureIn(BaseModel):
    """A signature made on the signer's machine: the three files, as UTF-8 JSON text."""

    signer: Annotated[str, StringConstraints(pattern=r"^key:sha256:[0-9a-f]{64}$")]
    bundle: Annotated[str, StringConstraints(min_length=2, max_length=MAX_PART)]
    release: Annotated[str, StringConstraints(min_length=2, max_length=MAX_RELEASE_BYTES)]
    provenance: Annotated[str, StringConstraints(min_length=2, max_length=MAX_PART)]


@dataclass(frozen=True)
class SignedFilesOut(SignatureRecord):
    """The newest signature (where its files are kept, who signed) with its three files."""

    bundle: str = ""
    release: str = ""
    provenance: str = ""


class VerificationIn(BaseModel):
    """What a verifier found: the signature it checked and the outcome."""

    record_sha256: Sha256
    where: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@/-]{1,200}$")]
    ok: bool


class VerificationOut(BaseModel):
    """The recorded outcome: ``verified`` or ``refused``."""

    outcome: str


def _version(ws: Workspace, name: str, version: int) -> ModelVersion:
    return registry.get_model_version(f"{name}:{version}", workspace=ws)


def _signed_resources(bundle: bytes) -> dict[str, str]:
    """``{file name: sha256}`` the bundle's in-toto statement covers, or 400."""
    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
        resources = statement["predicate"]["resources"]
        return {str(r["name"]): str(r["digest"]) for r in resources}
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgumentError(
            "the bundle is not an OpenSSF Model Signing bundle (a DSSE envelope over an"
            " in-toto statement of the signed files)",
            hint="sign with amlpkg models sign, which sends the bundle model-signing made",
        ) from None


def checked_files(found: ModelVersion, body: SignatureIn) -> SignatureFiles:
    """The files, refused (400) unless they sign this version's file and release."""
    try:
        files = SignatureFiles(
            body.bundle.encode(), body.release.encode(), body.provenance.encode()
        )
    except UnicodeEncodeError:
        raise InvalidArgumentError("the signature files must be UTF-8 text") from None
    try:
        release = Release.parse(files.release)
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    if (release.name, release.version, release.model_sha256) != (
        found.name,
        found.version,
        found.sha256,
    ):
        raise InvalidArgumentError(
            f"the release names {release.name}:{release.version} with sha256"
            f" {release.model_sha256[:12]}..., not {found.ref} ({found.sha256[:12]}...)",
            hint="sign the version you send the signature to",
        )
    if release.provenance_sha256 != hashlib.sha256(files.provenance).hexdigest():
        raise InvalidArgumentError("the release does not name this provenance statement's sha256")
    signed = _signed_resources(files.bundle)
    expected = {MODEL_FILE: found.sha256, RELEASE_FILE: hashlib.sha256(files.release).hexdigest()}
    if signed != expected:
        raise InvalidArgumentError(
            f"the bundle signs {sorted(signed)[:4]} with other digests than {found.ref}'s"
            " model.onnx and this release",
            hint="send the bundle made over this version's file and release",
        )
    return files


def files_out(ws: Workspace, record: SignatureRecord) -> dict[str, Any]:
    """The record with its three files as text."""
    read = ws.artifacts.read_bytes
    return {
        **record.to_dict(),
        "bundle": read(record.bundle_sha256).decode(),
        "release": read(record.release_sha256).decode(),
        "provenance": read(record.provenance_sha256).decode(),
    }


@router.get("/models/{name}/versions/{version}/signature", response_model=SignedFilesOut)
def newest_signature(name: str, version: VersionNumber, ws: WorkspaceDep) -> dict[str, Any]:
    """The version's newest signature, with its bundle, release and provenance."""
    found = _version(ws, name, version)
    record = signature_of(ws, (MODEL_VERSION_KIND, found.ref))
    if record is None:
        raise NotFoundError(
            f"model {found.ref} is not signed", hint=f"amlpkg models sign {found.ref} --key KEY"
        )
    return files_out(ws, record)


@router.post(
    "/models/{name}/versions/{version}/signatures",
    response_model=SignatureRecord,
    status_code=201,
    dependencies=WRITE,
)
def add_signature(
    name: str, version: VersionNumber, body: SignatureIn, ws: WorkspaceDep, request: Request
) -> dict[str, Any]:
    """Keep a signature made on the signer's machine (checked to sign this version)."""
    found = _version(ws, name, version)
    files = checked_files(found, body)
    node = (MODEL_VERSION_KIND, found.ref)
    record = record_signature(ws, node, found.version, body.signer, files)
    request.state.audit_target = f"{found.ref}/signatures/{record.record_sha256}"
    return record.to_dict()


@router.post(
    "/models/{name}/versions/{version}/verifications",
    response_model=VerificationOut,
    status_code=201,
    dependencies=WRITE,
)
def add_verification(
    name: str, version: VersionNumber, body: VerificationIn, ws: WorkspaceDep, request: Request
) -> VerificationOut:
    """Record that a verifier checked one of the version's signatures, and the outcome."""
    found = _version(ws, name, version)
    record = signature_of_version(ws, found, body.record_sha256)
    record_verification(found.ref, body.where, body.ok, workspace=ws, record=record)
    outcome = "verified" if body.ok else "refused"
    request.state.audit_target = f"{found.ref}/verifications/{outcome}"
    return VerificationOut(outcome=outcome)


def signature_of_version(ws: Workspace, found: ModelVersion, digest: str) -> SignatureRecord:
    """The signature record ``digest`` of ``found``, or 404 when it is not one of its."""
    node = (MODEL_VERSION_KIND, found.ref)
    if not any(e.dst_kind == SIGNATURE_KIND and e.dst_id == digest for e in edges_from(ws, node)):
        raise NotFoundError(f"{found.ref} has no signature with record sha256 {digest[:12]}...")
    return read_signature(ws, digest)
