"""Verify a downloaded model's OpenSSF Model Signing bundle offline before it is swapped in.

The desired model names where its bundle (``signature_url``) and signed release file
(``release_url``) are; both are small and fetched with a size bound. The model, the
release file and the bundle are put in a private folder laid out as the runtime's
version folder and verified with the runtime's verifier against the device's trust
anchor, so a device and a server accept exactly the same models. The signed release
must name this model, this version and this digest, and not be below the twin's
``min_version`` (a replayed older release).
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from amlpkg.edge_agent.desired import DesiredModel
from amlpkg.errors import UnavailableError
from amlpkg.release import (
    MAX_RELEASE_BYTES,
    MODEL_FILE,
    RELEASE_FILE,
    SIGNATURE_FILE,
)
from amlpkg.runtime.signing import (
    MAX_BUNDLE_BYTES,
    SignatureError,
    Trust,
    Verified,
    check_not_older,
)


def fetch_small(url: str, limit: int) -> bytes:
    """The bytes at an ``http(s)://`` or ``file://`` URL; refuse more than ``limit`` bytes."""
    parsed = urllib.parse.urlparse(url)
    try:
        if parsed.scheme == "file":
            with Path(urllib.parse.unquote(parsed.path)).open("rb") as handle:
                data = handle.read(limit + 1)
        elif parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read(limit + 1)
        else:
            raise SignatureError(f"{url!r}: only http(s):// and file:// URLs are fetched")
    except (OSError, urllib.error.URLError) as exc:
        raise UnavailableError(f"cannot fetch {url}: {exc}") from None
    if len(data) > limit:
        raise SignatureError(f"{url} is over {limit} bytes: not a signature file")
    return bytes(data)


def verify_desired(
    desired: DesiredModel, model: Path, trust: Trust, work: Path, min_version: int | None
) -> Verified:
    """Verify ``model`` (already digest-checked) against its bundle; raise SignatureError."""
    if not desired.signature_url or not desired.release_url:
        raise SignatureError(
            f"desired model {desired.ref} carries no signature but this device requires one",
            hint="sign it (amlpkg models sign) and set signature_url and release_url",
        )
    bundle = fetch_small(desired.signature_url, MAX_BUNDLE_BYTES)
    release = fetch_small(desired.release_url, MAX_RELEASE_BYTES)
    folder = work / desired.sha256
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        try:
            os.link(model, folder / MODEL_FILE)  # the cache file, no copy of a large model
        except OSError:
            shutil.copyfile(model, folder / MODEL_FILE)
        (folder / RELEASE_FILE).write_bytes(release)
        (folder / SIGNATURE_FILE).write_bytes(bundle)
        verified = trust.verify_folder(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    signed = verified.release
    if (signed.name, str(signed.version), signed.model_sha256) != (
        desired.name,
        desired.version,
        desired.sha256,
    ):
        raise SignatureError(
            f"the signature is for {signed.name}:{signed.version} ({signed.model_sha256[:12]}),"
            f" not the desired {desired.ref} ({desired.sha256[:12]})",
            hint="the twin names a different model than the one signed",
        )
    check_not_older(signed, min_version, f"desired model {desired.ref}")
    return verified
