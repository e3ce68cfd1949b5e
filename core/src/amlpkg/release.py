"""The signed release document of a model version, shared by signer and verifiers.

A signed version is a folder of ``model.onnx``, ``amlpkg-release.json`` and the
OpenSSF Model Signing bundle ``model.sig`` over the other two. The release file
carries the facts a verifier needs besides the bytes: which model, which registry
version (monotonically increasing, so an older signed release can be refused as a
replay) and the digest of the SLSA provenance statement that describes how it was
made. Standard library only: the trainer writes it, the runtime and agent read it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "model.sig"  # model-signing's default bundle name
RELEASE_FILE = "amlpkg-release.json"
PROVENANCE_FILE = "provenance.intoto.json"
SIGNED_FILES = (MODEL_FILE, RELEASE_FILE)
MAX_RELEASE_BYTES = 64 * 1024
RELEASE_SCHEMA = "https://amlpkg.dev/release/v1"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Release:
    """The signed facts about one model version (``amlpkg-release.json``)."""

    name: str
    version: int
    model_sha256: str
    provenance_sha256: str | None = None

    @classmethod
    def parse(cls, data: bytes) -> Release:
        """Read a release document; raise ValueError when malformed."""
        try:
            doc = json.loads(data)
            if doc.get("_type") != RELEASE_SCHEMA:
                raise ValueError(f"_type is not {RELEASE_SCHEMA}")
            version = doc["version"]
            if not isinstance(version, int) or isinstance(version, bool) or version <= 0:
                raise ValueError("version must be a positive integer")
            digest = str(doc["model_sha256"])
            if not _SHA256.fullmatch(digest):
                raise ValueError("model_sha256 must be 64 lower-case hex digits")
            provenance = doc.get("provenance_sha256")
            return cls(str(doc["name"]), version, digest, provenance)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{RELEASE_FILE} is malformed: {exc}") from None

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys) of the document, as signed."""
        doc: dict[str, Any] = {
            "_type": RELEASE_SCHEMA,
            "name": self.name,
            "version": self.version,
            "model_sha256": self.model_sha256,
            "provenance_sha256": self.provenance_sha256,
        }
        return json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n"


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 hex digest and size of the file at ``path`` (as a release names its model)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
