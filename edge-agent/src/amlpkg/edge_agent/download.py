"""Fetch a model file with resume, then verify its digest and (optionally) its signature.

Bytes land in ``<staging>/<sha256>.part``; an interrupted download resumes from the
bytes already there (HTTP ``Range``; ``file://`` seeks). Only a file whose SHA-256
matches the desired digest leaves staging, renamed to ``<cache>/<sha256>.onnx``.
An ``oci://`` source is resolved through the registry API to the blob of its model
layer (:mod:`amlpkg.edge_agent.oci`), which is then fetched the same way.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from amlpkg.edge_agent.desired import DesiredModel
from amlpkg.edge_agent.oci import model_blob_url
from amlpkg.errors import IntegrityError, InvalidArgumentError, UnavailableError
from amlpkg.release import sha256_file

CHUNK = 1024 * 1024


def verify_signature(sha256_hex: str, signature_b64: str | None, public_key_pem: bytes) -> None:
    """Check an Ed25519 signature over the raw digest; raise :class:`IntegrityError` if bad."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not signature_b64:
        raise IntegrityError(
            "the desired model carries no signature but a public key is configured",
            hint="sign the model digest and set desired.model.signature",
        )
    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgumentError("the configured public key is not an Ed25519 key")
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), bytes.fromhex(sha256_hex))
    except (InvalidSignature, ValueError):
        raise IntegrityError(
            f"the signature of model digest {sha256_hex[:12]} does not verify",
            hint="the model was not signed by the configured key: check the publisher",
        ) from None


def _resume_http(url: str, part: Path) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the answer's socket
        if exc.code == 416 and have:  # already complete
            return
        raise UnavailableError(f"download of {url} failed: HTTP {exc.code}") from None
    with response:
        # 206: the server honoured the range; 200: it sends everything again.
        mode = "ab" if have and response.status == 206 else "wb"
        expected = response.headers.get("Content-Length")
        written = 0
        with part.open(mode) as out:
            while block := response.read(CHUNK):
                out.write(block)
                written += len(block)
        # urllib returns a short body without an error when the connection drops.
        if expected is not None and written < int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - written)


def _resume_file(path: Path, part: Path) -> None:
    have = part.stat().st_size if part.exists() else 0
    with path.open("rb") as source, part.open("ab") as out:
        source.seek(have)
        shutil.copyfileobj(source, out, CHUNK)


def fetch_model(
    desired: DesiredModel,
    staging: Path,
    cache: Path,
    *,
    public_key_pem: bytes | None = None,
) -> Path:
    """Download (resuming), verify and return ``<cache>/<sha256>.onnx``.

    Raises :class:`IntegrityError` on a wrong digest or a bad signature (the partial
    file is discarded so the next try starts clean), :class:`UnavailableError` when the
    source cannot be reached (the partial file is kept for resume).
    """
    if public_key_pem is not None:
        verify_signature(desired.sha256, desired.signature, public_key_pem)
    staging.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"{desired.sha256}.onnx"
    if final.is_file() and sha256_file(final)[0] == desired.sha256:
        return final
    part = staging / f"{desired.sha256}.part"
    # An OCI artifact: its model layer is a plain blob, fetched (and resumed) by URL.
    url = (
        desired.url if desired.url is not None else model_blob_url(str(desired.oci), desired.sha256)
    )
    parsed = urllib.parse.urlparse(url)
    try:
        if parsed.scheme == "file":
            _resume_file(Path(urllib.parse.unquote(parsed.path)), part)
        else:
            _resume_http(url, part)
    except (OSError, http.client.HTTPException) as exc:
        raise UnavailableError(
            f"download of {url} failed: {exc!r}",
            hint="the partial download is kept and resumes on the next try",
        ) from None
    actual = sha256_file(part)[0]
    if actual != desired.sha256:
        part.unlink(missing_ok=True)
        raise IntegrityError(
            f"downloaded model {desired.ref} has sha256 {actual[:12]}…, "
            f"desired {desired.sha256[:12]}…",
            hint="the file at the URL is not the registered model: republish or fix the digest",
        )
    os.replace(part, final)
    return final
