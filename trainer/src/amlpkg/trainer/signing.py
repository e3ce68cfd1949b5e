"""Sign registered model versions with OpenSSF Model Signing, offline, with a key.

``sign_model_version`` writes a version folder (``model.onnx`` + the signed release
file) to a private temp folder, signs it with ``model-signing`` (a Sigstore bundle
over an in-toto statement of each file's SHA-256) and stores the bundle, the release
file and the SLSA provenance statement as content-addressed artifacts. A small
signature record (their digests, the signer) is stored too and linked from the
version in the lineage: ``model_version --signed--> signature``.

Key-based signing (EC P-256/384/521 PEM keys) needs no network. Sigstore keyless
signing needs an OIDC identity and Fulcio/Rekor on the network: not offered here.
``model-signing`` comes with ``amlpkg-trainer[signing]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from amlpkg.release import (
    MODEL_FILE,
    PROVENANCE_FILE,
    RELEASE_FILE,
    SIGNATURE_FILE,
    Release,
)
from amlpkg.store.lineage_edges import add_edge, edges_from
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import (
    MODEL_VERSION_KIND,
    ModelVersion,
    resolve_model_file,
    using_workspace,
)
from amlpkg.trainer.slsa import provenance_statement

SIGNATURE_KIND = "signature"  # lineage node id: sha256 of the signature record
VERIFICATION_KIND = "verification"
KEY_ENV = "AMLPKG_SIGNING_KEY"
KEY_PASSWORD_ENV = "AMLPKG_SIGNING_KEY_PASSWORD"


@dataclass(frozen=True)
class SignatureRecord:
    """Where a version's signature, release and provenance are stored."""

    ref: str
    version: int
    signer: str
    bundle_sha256: str
    release_sha256: str
    provenance_sha256: str
    signed: float
    record_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


def configured_key() -> Path | None:
    """The signing key ``AMLPKG_SIGNING_KEY`` names, or None (sign nothing implicitly)."""
    value = os.environ.get(KEY_ENV, "").strip()
    return Path(value).expanduser() if value else None


def key_fingerprint(public_key: Any) -> str:
    """``key:sha256:<hex>`` of a public key's DER SubjectPublicKeyInfo (the runtime's form)."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"key:sha256:{hashlib.sha256(der).hexdigest()}"


@dataclass(frozen=True)
class Signer:
    """A loaded signing key: model-signing's config and the signer's fingerprint."""

    config: Any
    fingerprint: str


def load_signer(key: Path, password: str | None = None) -> Signer:
    """Load the PEM EC private key ``key`` (checked before any work that would be signed)."""
    password = password if password is not None else os.environ.get(KEY_PASSWORD_ENV)
    try:
        from cryptography.hazmat.primitives import serialization
        from model_signing import hashing, signing
    except ImportError:
        raise FailedPreconditionError(
            "signing needs the model-signing library", hint="pip install 'amlpkg-trainer[signing]'"
        ) from None
    try:
        private = serialization.load_pem_private_key(
            key.read_bytes(), password.encode() if password else None
        )
        config = signing.Config().use_elliptic_key_signer(private_key=key, password=password)
    except OSError as exc:
        raise NotFoundError(f"cannot read signing key {key}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(
            f"signing key {key} cannot be used: {exc}",
            hint="use a PEM EC private key (P-256/384/521): openssl ecparam -name prime256v1"
            f" -genkey -noout -out key.pem; an encrypted key needs {KEY_PASSWORD_ENV}",
        ) from None
    # The bundle covers every file of the folder but itself.
    config.set_hashing_config(hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE]))
    return Signer(config, key_fingerprint(private.public_key()))


@dataclass(frozen=True)
class SignedFile:
    """What is signed: a file of ``version`` (its own or one made from it), as lineage ``node``."""

    version: ModelVersion
    node: tuple[str, str]
    blob: Path
    sha256: str


def sign_model_version(
    ref: str,
    key: Path,
    *,
    password: str | None = None,
    optimize: dict[str, Any] | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
) -> SignatureRecord:
    """Sign version ``ref`` with the PEM EC private key ``key``; store and record it."""
    signer = load_signer(key, password)
    with using_workspace(workspace, home) as ws:
        version, blob = resolve_model_file(ref, workspace=ws)
        provenance = provenance_statement(ws, version, optimize)
        subject = SignedFile(version, (MODEL_VERSION_KIND, version.ref), blob, version.sha256)
        return _sign(ws, signer, subject, provenance)


def sign_derived_file(
    ws: Workspace, signer: Signer, subject: SignedFile, settings: dict[str, Any]
) -> SignatureRecord:
    """Sign ``subject``, a file made from its version (an optimized variant).

    Its release names the version (name and the monotonic version number, so replay
    floors hold) and the file's own digest; the provenance names how it was made
    (``settings``) and the version's file as its source.
    """
    name = f"{subject.node[1]}/{MODEL_FILE}"
    provenance = provenance_statement(ws, subject.version, settings, subject=(name, subject.sha256))
    return _sign(ws, signer, subject, provenance)


def _sign(ws: Workspace, signer: Signer, subject: SignedFile, provenance: bytes) -> SignatureRecord:
    files = sign_file(signer, subject, provenance)
    return record_signature(ws, subject.node, subject.version.version, signer.fingerprint, files)


@dataclass(frozen=True)
class SignatureFiles:
    """What signing makes: the bundle, the signed release file and the provenance statement."""

    bundle: bytes
    release: bytes
    provenance: bytes


def sign_file(signer: Signer, subject: SignedFile, provenance: bytes) -> SignatureFiles:
    """Sign ``subject`` with its ``provenance`` here; nothing is stored."""
    version = subject.version
    prov_digest = hashlib.sha256(provenance).hexdigest()
    release = Release(version.name, version.version, subject.sha256, prov_digest)
    with tempfile.TemporaryDirectory(prefix="amlpkg-sign-") as tmp:
        folder = Path(tmp) / "signed"
        folder.mkdir()
        shutil.copyfile(subject.blob, folder / MODEL_FILE)
        (folder / RELEASE_FILE).write_bytes(release.to_json())
        try:
            signer.config.sign(folder, folder / SIGNATURE_FILE)
        except Exception as exc:
            raise FailedPreconditionError(f"signing {subject.node[1]} failed: {exc}") from None
        bundle = (folder / SIGNATURE_FILE).read_bytes()
    return SignatureFiles(bundle, release.to_json(), provenance)


def record_signature(
    ws: Workspace,
    node: tuple[str, str],
    version: int,
    signer: str,
    files: SignatureFiles,
    *,
    signed: float | None = None,
) -> SignatureRecord:
    """Store ``files`` as artifacts with their record, linked from ``node`` in the lineage.

    The one way a signature is kept, whether it was made in this workspace or on a
    user's machine and sent to a team server.
    """
    prov_digest, _ = ws.artifacts.put_bytes(files.provenance)
    bundle_digest, _ = ws.artifacts.put_bytes(files.bundle)
    release_digest, _ = ws.artifacts.put_bytes(files.release)
    record = SignatureRecord(
        ref=node[1],
        version=version,
        signer=signer,
        bundle_sha256=bundle_digest,
        release_sha256=release_digest,
        provenance_sha256=prov_digest,
        signed=time.time() if signed is None else signed,
    )
    body = json.dumps(record.to_dict(), sort_keys=True).encode()
    record_digest, _ = ws.artifacts.put_bytes(body)
    add_edge(ws, node, (SIGNATURE_KIND, record_digest), "signed")
    return SignatureRecord(**{**record.to_dict(), "record_sha256": record_digest})


def signature_of(ws: Workspace, node: tuple[str, str]) -> SignatureRecord | None:
    """The newest signature recorded for lineage ``node``, or None."""
    edges = [e for e in edges_from(ws, node) if e.dst_kind == SIGNATURE_KIND]
    if not edges:
        return None
    return read_signature(ws, edges[-1].dst_id)


def read_signature(ws: Workspace, digest: str) -> SignatureRecord:
    """The signature record stored as artifact ``digest``."""
    data = json.loads(ws.artifacts.read_bytes(digest))
    return SignatureRecord(**{**data, "record_sha256": digest})


def latest_signature(
    ref: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> SignatureRecord:
    """The newest signature of version ``ref``; NotFoundError when it was never signed."""
    with using_workspace(workspace, home) as ws:
        version, _ = resolve_model_file(ref, workspace=ws)
        record = signature_of(ws, (MODEL_VERSION_KIND, version.ref))
        if record is None:
            raise NotFoundError(
                f"model {version.ref} is not signed",
                hint=f"amlpkg models sign {version.ref} --key KEY",
            )
        return record


def write_signed_folder(
    ws: Workspace,
    record: SignatureRecord,
    blob: Path,
    folder: Path,
    with_provenance: Path | None = None,
) -> None:
    """Write ``blob`` with ``record``'s release and bundle as a signed folder at ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(blob, folder / MODEL_FILE)
    (folder / RELEASE_FILE).write_bytes(ws.artifacts.read_bytes(record.release_sha256))
    (folder / SIGNATURE_FILE).write_bytes(ws.artifacts.read_bytes(record.bundle_sha256))
    if with_provenance is not None:
        with_provenance.write_bytes(ws.artifacts.read_bytes(record.provenance_sha256))


def export_signed(
    ref: str,
    folder: Path,
    *,
    with_provenance: Path | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
) -> SignatureRecord:
    """Write the signed version folder (model, release, bundle) of ``ref`` into ``folder``.

    ``with_provenance``: also write the provenance statement there (outside the
    folder: an extra file inside would break the signature).
    """
    with using_workspace(workspace, home) as ws:
        record = latest_signature(ref, workspace=ws)
        _, blob = resolve_model_file(ref, workspace=ws)
        write_signed_folder(ws, record, blob, folder, with_provenance)
        return record


def record_verification(
    ref: str,
    where: str,
    ok: bool,
    *,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    record: SignatureRecord | None = None,
) -> None:
    """Record in the lineage that ``where`` (a server, a device) verified ``ref`` or refused it.

    ``record``: the signature checked (default: the version ``ref``'s newest).
    """
    with using_workspace(workspace, home) as ws:
        record = record or latest_signature(ref, workspace=ws)
        outcome = "verified" if ok else "refused"
        add_edge(
            ws,
            (SIGNATURE_KIND, record.record_sha256),
            (VERIFICATION_KIND, f"{where}:{outcome}"),
            outcome,
        )


__all__ = [
    "KEY_ENV",
    "PROVENANCE_FILE",
    "SignatureFiles",
    "SignatureRecord",
    "SignedFile",
    "Signer",
    "configured_key",
    "export_signed",
    "latest_signature",
    "load_signer",
    "read_signature",
    "record_signature",
    "record_verification",
    "sign_derived_file",
    "sign_file",
    "sign_model_version",
    "signature_of",
    "write_signed_folder",
]
