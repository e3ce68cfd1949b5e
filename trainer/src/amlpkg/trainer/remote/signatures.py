"""Signing and verifying a team server's model versions on the user's machine.

``amlpkg models sign`` against a server downloads the version's file (sha256
checked), makes the bundle and the SLSA provenance here with
:mod:`amlpkg.trainer.signing` (the key never leaves this machine) and sends the
three files to the server, which checks and keeps them as an embedded workspace
does. ``verify``, ``build`` and ``push`` fetch them back, each file checked
against the digests of the server's record.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from amlpkg.errors import AmlpkgError, IntegrityError, InvalidArgumentError, NotFoundError
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import MODEL_VERSION_KIND, ModelVersion
from amlpkg.trainer.remote.backend import RemoteBackend
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.remote.model_files import download_version_file, require_contributor
from amlpkg.trainer.signing import (
    SignatureFiles,
    SignatureRecord,
    SignedFile,
    load_signer,
    record_signature,
    sign_file,
)
from amlpkg.trainer.slsa import statement_of

T = TypeVar("T")
_RECORD_FIELDS = tuple(SignatureRecord.__dataclass_fields__)


def _path(version: ModelVersion, tail: str) -> str:
    return f"/models/{quote(version.name, safe='')}/versions/{int(version.version)}/{tail}"


def _record(body: dict[str, Any]) -> SignatureRecord:
    return SignatureRecord(**{k: body[k] for k in _RECORD_FIELDS})


def fetch_signature(
    client: TeamClient, version: ModelVersion
) -> tuple[SignatureRecord, SignatureFiles] | None:
    """The version's newest signature on the server with its files (digests checked), or None."""
    try:
        body = client.request("GET", _path(version, "signature")).json()
    except NotFoundError:
        return None
    record = _record(body)
    files = SignatureFiles(
        body["bundle"].encode(), body["release"].encode(), body["provenance"].encode()
    )
    for what, data, digest in (
        ("bundle", files.bundle, record.bundle_sha256),
        ("release", files.release, record.release_sha256),
        ("provenance", files.provenance, record.provenance_sha256),
    ):
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(
                f"the signature {what} of {version.ref} from {client.server.url} does not match"
                " its recorded sha256",
                hint="try again; if it persists the server's copy is damaged",
            )
    return record, files


def _provenance(backend: RemoteBackend, version: ModelVersion) -> bytes:
    """The SLSA statement of ``version`` from the server's run and artifacts, as embedded."""
    run, artifacts = None, []
    if version.run_id is not None:
        try:
            run = backend.get_run(version.run_id)
        except NotFoundError:
            run = None
        else:
            artifacts = backend.list_artifacts(run.id)
    return statement_of(version, run, artifacts)


def sign_with(
    backend: RemoteBackend, ref: str, key: Path, password: str | None = None
) -> SignatureRecord:
    """Sign ``ref`` of the backend's server here with ``key``; keep the signature there."""
    signer = load_signer(key, password)  # a bad key fails before any download
    client = backend.client
    require_contributor(client, "amlpkg models sign")
    version = backend.get_model_version(ref)
    with tempfile.TemporaryDirectory(prefix="amlpkg-remote-sign-") as tmp:
        blob = Path(tmp) / MODEL_FILE
        download_version_file(client, version.name, version.version, version.sha256, blob)
        subject = SignedFile(version, (MODEL_VERSION_KIND, version.ref), blob, version.sha256)
        files = sign_file(signer, subject, _provenance(backend, version))
    body = {
        "signer": signer.fingerprint,
        "bundle": files.bundle.decode(),
        "release": files.release.decode(),
        "provenance": files.provenance.decode(),
    }
    answer = client.request("POST", _path(version, "signatures"), json=body, idempotent=False)
    return _record(answer.json())


def sign_on_server(
    server: Server, ref: str, key: Path, password: str | None = None
) -> SignatureRecord:
    """:func:`amlpkg.trainer.signing.sign_model_version` for a version of ``server``."""
    backend = RemoteBackend(server)
    try:
        return sign_with(backend, ref, key, password)
    finally:
        backend.close()


def write_signed(
    client: TeamClient, version: ModelVersion, folder: Path
) -> tuple[SignatureRecord, SignatureFiles]:
    """Write the version's signed folder (model, release, bundle) from the server."""
    found = fetch_signature(client, version)
    if found is None:
        raise NotFoundError(
            f"model {version.ref} is not signed on {client.server.url}",
            hint=f"amlpkg models sign {version.ref} --key KEY",
        )
    record, files = found
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / MODEL_FILE
    download_version_file(client, version.name, version.version, version.sha256, model)
    (folder / RELEASE_FILE).write_bytes(files.release)
    (folder / SIGNATURE_FILE).write_bytes(files.bundle)
    return record, files


def verify_on_server(server: Server, ref: str, where: str, verify: Callable[[Path], T]) -> T:
    """Check ``ref``'s newest signature on ``server`` here with ``verify`` (a signed folder
    in, raising :class:`AmlpkgError` when refused); record the outcome there as ``where``."""
    if "/" in ref:
        raise InvalidArgumentError(
            f"{ref} is an optimized variant; variants on a team server are not signed",
            hint="verify the version (NAME:VERSION), or a variant in a local workspace (--home)",
        )
    backend = RemoteBackend(server)
    client = backend.client
    try:
        require_contributor(client, "amlpkg models verify")
        version = backend.get_model_version(ref)
        with tempfile.TemporaryDirectory(prefix="amlpkg-remote-verify-") as tmp:
            record, _ = write_signed(client, version, Path(tmp) / "version")
            try:
                verified = verify(Path(tmp) / "version")
            except AmlpkgError:
                _record_verification(client, version, record, where, False)
                raise
        _record_verification(client, version, record, where, True)
        return verified
    finally:
        backend.close()


def _record_verification(
    client: TeamClient, version: ModelVersion, record: SignatureRecord, where: str, ok: bool
) -> None:
    body = {"record_sha256": record.record_sha256, "where": where, "ok": ok}
    client.request("POST", _path(version, "verifications"), json=body, idempotent=False)


def keep_signature(client: TeamClient, version: ModelVersion, ws: Workspace) -> bool:
    """Copy the version's newest signature on the server into ``ws`` (a build's cache
    workspace), where a build looks for it; False when the version is not signed."""
    found = fetch_signature(client, version)
    if found is None:
        return False
    record, files = found
    node = (MODEL_VERSION_KIND, version.ref)
    record_signature(ws, node, version.version, record.signer, files, signed=record.signed)
    return True
