"""Image references and the registry calls an image build needs beyond ``oci.registry``.

Blobs of hundreds of MB are streamed from files (never held in memory), a blob
another repository of the same registry has is mounted instead of uploaded, and a
tag is resolved to the digest of its manifest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.oci.registry import MANIFEST, Reference, Registry, descriptor

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
_REF = re.compile(
    r"(?P<host>[A-Za-z0-9.-]+(:[0-9]+)?)/(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?"
)


@dataclass(frozen=True)
class ImageRef:
    """``HOST[:PORT]/REPOSITORY[:TAG][@sha256:...]`` of an image in a registry."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str, what: str = "image reference") -> ImageRef:
        """Parse a registry reference (the registry host is required: no implicit hub)."""
        found = _REF.fullmatch(text.removeprefix("oci://"))
        host = found["host"] if found is not None else ""
        if found is None or not ("." in host or ":" in host or host == "localhost"):
            raise InvalidArgumentError(
                f"{text!r} is not a registry {what}",
                hint="write REGISTRY[:PORT]/NAME:TAG in lower case, e.g. 127.0.0.1:5000/iris:1",
            )
        tag = found["tag"] or (None if found["digest"] else "latest")
        return cls(found["host"], found["repo"], tag, found["digest"])

    @property
    def target(self) -> str:
        """What the manifest endpoint is asked for: the digest when there is one."""
        return self.digest or str(self.tag)

    def pinned(self, digest: str) -> ImageRef:
        """The same reference with its digest."""
        return replace(self, digest=digest)

    def by_digest(self) -> str:
        """``HOST/REPOSITORY@sha256:...`` (what deployments pull)."""
        return f"{self.host}/{self.repository}@{self.digest}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        return f"{self.host}/{self.repository}{tag}" + (f"@{self.digest}" if self.digest else "")


def image_manifest(
    config_type: str,
    config: bytes,
    layers: list[dict[str, Any]],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An OCI image manifest."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(config_type, config),
        "layers": layers,
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return manifest


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes :meth:`Registry.push_manifest` sends (sorted keys, compact)."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


class OciRegistry(Registry):
    """One repository of a registry, for image builds."""

    def __init__(self, ref: ImageRef, timeout: float = 600.0) -> None:
        super().__init__(Reference(ref.host, ref.repository, ref.tag, ref.digest), timeout)
        self.host = ref.host
        self.repository = ref.repository

    def __enter__(self) -> OciRegistry:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def has_blob(self, digest: str) -> bool:
        """Whether the repository has the blob ``digest``."""
        return self._call("HEAD", f"{self.base}/blobs/{digest}").status_code == 200

    def mount_blob(self, digest: str, source_repository: str) -> bool:
        """Mount a blob of another repository of this registry; whether it worked."""
        if self.has_blob(digest):
            return True
        response = self._call(
            "POST",
            f"{self.base}/blobs/uploads/",
            params={"mount": digest, "from": source_repository},
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # the registry started an upload instead: cancel it
            location = response.headers.get("Location", "")
            if location:
                self._call("DELETE", httpx.URL(self.base).join(location))
        return False

    def push_blob_file(self, path: Path, digest: str, size: int) -> str:
        """Upload a file (streamed) unless the repository has it; its digest."""
        if self.has_blob(digest):
            return digest
        started = self._check(self._call("POST", f"{self.base}/blobs/uploads/"), "blob upload")
        url = httpx.URL(self.base).join(started.headers.get("Location", ""))
        with path.open("rb") as handle:
            self._check(
                self._call(
                    "PUT",
                    url.copy_merge_params({"digest": digest}),
                    content=iter(lambda: handle.read(1 << 20), b""),
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Length": str(size)},
                ),
                f"blob {digest}",
            )  # fmt: skip
        return digest

    def resolve(self, ref: ImageRef) -> str:
        """The digest of the manifest (or index) ``ref`` names."""
        _, digest = self.manifest(ref.target)
        return digest
