"""Offline verification of signed model versions (OpenSSF Model Signing bundles).

A signed version folder holds exactly::

    model.onnx            the model
    amlpkg-release.json   {"name", "version", "model_sha256", "provenance_sha256", ...}
    model.sig             Sigstore bundle: DSSE over an in-toto statement of the
                          SHA-256 of every other file (model-signing's default name)

The bundle covers every file but itself, so the release file (and the signed,
monotonically increasing ``version`` in it) cannot be changed, added or dropped
without breaking the signature. Verification needs no network: the trust anchor is
a PEM public key (key-signed bundles) or a PEM certificate chain (certificate-signed
bundles). Keyless Sigstore bundles need Rekor/Fulcio trust roots and are refused here.

``model-signing`` is heavy (sigstore, tuf): it comes with ``amlpkg-runtime[signing]``
and is imported only when a signature is verified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.release import (
    MAX_RELEASE_BYTES,
    MODEL_FILE,
    RELEASE_FILE,
    SIGNATURE_FILE,
    SIGNED_FILES,
    Release,
    sha256_file,
)

MAX_BUNDLE_BYTES = 1024 * 1024


class SignatureError(FailedPreconditionError):
    """A model's signature is missing, does not verify, or signs an older version.

    A precondition failure (HTTP 400, gRPC FAILED_PRECONDITION): the request is fine,
    the model is not in a state this server may load.
    """


@dataclass(frozen=True, slots=True)
class Verified:
    """What a successful verification established."""

    release: Release
    signer: str  # "key:sha256:<hex of the trusted public key PEM>" or "cert:sha256:<...>"
    bundle_sha256: str

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the verified model file."""
        return f"sha256:{self.release.model_sha256}"

    def parameters(self) -> dict[str, str]:
        """Model metadata parameters describing the verified signature."""
        return {
            "signature_verified": "true",
            "signature_digest": self.digest,
            "signature_signer": self.signer,
            "signature_bundle": f"sha256:{self.bundle_sha256}",
            "signed_version": str(self.release.version),
        }


class Trust:
    """The trust anchor: a PEM public key or a PEM certificate chain, read once."""

    def __init__(self, path: Path) -> None:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot read the trust file {path}: {exc.strerror or exc}",
                hint="pass the signer's PEM public key or a PEM root/chain with --trust",
            ) from None
        self.path = path
        self.is_certificate = b"-----BEGIN CERTIFICATE-----" in pem
        if not self.is_certificate and b"PUBLIC KEY-----" not in pem:
            raise InvalidArgumentError(
                f"trust file {path} holds neither a PEM public key nor a PEM certificate",
                hint="export the public key: openssl ec -in key.pem -pubout -out key.pub",
            )
        self.signer = _fingerprint(pem, self.is_certificate, path)

    def _config(self) -> Any:
        try:
            from model_signing import verifying  # heavy: only when a signature is checked
        except ImportError:
            raise FailedPreconditionError(
                "signature verification needs the model-signing library",
                hint="pip install 'amlpkg-runtime[signing]'",
            ) from None
        config = verifying.Config()
        if self.is_certificate:
            return config.use_certificate_verifier(certificate_chain=[self.path])
        return config.use_elliptic_key_verifier(public_key=self.path)

    def verify_folder(self, folder: Path) -> Verified:
        """Verify a signed version folder; raise :class:`SignatureError` when it is not."""
        bundle = folder / SIGNATURE_FILE
        if not bundle.is_file():
            raise SignatureError(
                f"{folder.name}: no signature ({SIGNATURE_FILE}) beside {MODEL_FILE}",
                hint="sign it (amlpkg models sign NAME:VER --key KEY) and package it again",
            )
        for name in SIGNED_FILES:
            path = folder / name
            if path.is_symlink() or not path.is_file():
                raise SignatureError(f"{folder.name}: {name} is missing or not a regular file")
        if bundle.stat().st_size > MAX_BUNDLE_BYTES:
            raise SignatureError(f"{folder.name}: {SIGNATURE_FILE} is over {MAX_BUNDLE_BYTES} B")
        if (folder / RELEASE_FILE).stat().st_size > MAX_RELEASE_BYTES:
            raise SignatureError(f"{folder.name}: {RELEASE_FILE} is over {MAX_RELEASE_BYTES} B")
        config = self._config()
        try:
            # Hashes every file of the folder but the bundle and compares with the
            # signed manifest: a changed, added or missing file fails.
            config.verify(folder, bundle)
        except Exception as exc:
            raise SignatureError(
                f"signature check of {folder.name} failed: {_short(exc)}",
                hint="the model or its release file was changed, or was signed by a key"
                " this server does not trust",
            ) from None
        try:
            release = Release.parse((folder / RELEASE_FILE).read_bytes())
        except ValueError as exc:
            raise SignatureError(f"{folder.name}: {exc}", hint="sign the model again") from None
        model_digest = sha256_file(folder / MODEL_FILE)[0]
        if model_digest != release.model_sha256:  # the file changed after verification
            raise SignatureError(f"{folder.name}: {MODEL_FILE} changed while being verified")
        return Verified(release, self.signer, sha256_file(bundle)[0])


def _fingerprint(pem: bytes, certificate: bool, path: Path) -> str:
    """``key:sha256:<hex>`` of the key's DER SubjectPublicKeyInfo (what the signer reports),
    or ``cert:sha256:<hex>`` of the first certificate's DER."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise FailedPreconditionError(
            "signature verification needs the cryptography library",
            hint="pip install 'amlpkg-runtime[signing]'",
        ) from None
    try:
        if certificate:
            der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
            return f"cert:sha256:{hashlib.sha256(der).hexdigest()}"
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise InvalidArgumentError(f"trust file {path} cannot be read: {exc}") from None
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"key:sha256:{hashlib.sha256(der).hexdigest()}"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "…"


def check_not_older(release: Release, floor: int | None, what: str) -> None:
    """Refuse a signed version below ``floor`` (a replayed older release)."""
    if floor is not None and release.version < floor:
        raise SignatureError(
            f"{what}: signed version {release.version} of {release.name!r} is older than"
            f" {floor}, the lowest version allowed (a replayed older release?)",
            hint="publish and sign a newer version; older signed versions are refused",
        )
