"""A small OCI distribution client over the registry HTTP API (httpx; no Docker daemon).

Only what model artifacts need: blobs (monolithic upload, bounded download with its
digest checked before use), manifests (by tag or digest, digest checked when pulled by
digest) and OCI 1.1 referrers, through the referrers API or, on registries without it
(distribution 2.x), the referrers tag schema ``sha256-<hex>`` holding an image index.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from amlpkg.errors import IntegrityError, InvalidArgumentError, NotFoundError, UnavailableError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
# Images pushed by a Docker engine carry Docker's manifest type; a registry only
# answers with the types the client accepts.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_REF = re.compile(
    r"oci://(?P<host>[A-Za-z0-9.-]+(:[0-9]+)?)/(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?"
)


@dataclass(frozen=True)
class Reference:
    """``oci://HOST/REPO[:TAG][@sha256:...]``."""

    host: str
    repo: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse a reference; refuse anything else (no scheme-less or path tricks)."""
        found = _REF.fullmatch(text)
        if found is None or not (found["tag"] or found["digest"]):
            raise InvalidArgumentError(
                f"{text!r} is not an OCI reference",
                hint="write oci://HOST[:PORT]/REPO:TAG or oci://HOST/REPO@sha256:<64 hex>",
            )
        return cls(found["host"], found["repo"], found["tag"], found["digest"])

    @property
    def target(self) -> str:
        """What the manifest endpoint is asked for: the digest when there is one."""
        return self.digest or str(self.tag)

    def __str__(self) -> str:
        tail = f":{self.tag}" if self.tag else ""
        return f"oci://{self.host}/{self.repo}{tail}" + (f"@{self.digest}" if self.digest else "")


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """An OCI descriptor of ``data``."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


class Registry:
    """One repository of one registry (plain HTTP for localhost, HTTPS elsewhere)."""

    def __init__(self, ref: Reference, timeout: float = 60.0) -> None:
        local = ref.host.split(":")[0] in ("localhost", "127.0.0.1")
        self.ref = ref
        self.base = f"{'http' if local else 'https'}://{ref.host}/v2/{ref.repo}"
        self.client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def _call(self, method: str, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"registry {self.ref.host} did not answer: {exc}",
                hint="check the registry address and that it is running",
            ) from None

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code == 404:
            raise NotFoundError(f"{what} not found in {self.ref.host}/{self.ref.repo}")
        if response.status_code >= 400:
            raise UnavailableError(
                f"registry refused {what}: HTTP {response.status_code} {response.text[:300]}"
            )
        return response

    def push_blob(self, data: bytes) -> str:
        """Upload ``data`` unless the registry has it; its digest."""
        digest = sha256_digest(data)
        if self._call("HEAD", f"{self.base}/blobs/{digest}").status_code == 200:
            return digest
        started = self._check(self._call("POST", f"{self.base}/blobs/uploads/"), "blob upload")
        location = started.headers.get("Location", "")
        url = httpx.URL(self.base).join(location)
        self._check(
            self._call(
                "PUT",
                url.copy_merge_params({"digest": digest}),
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            f"blob {digest}",
        )
        return digest

    def push_manifest(self, manifest: dict[str, Any], tag: str | None = None) -> str:
        """Put a manifest (by tag, else by its digest); its digest."""
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        digest = sha256_digest(body)
        media = str(manifest.get("mediaType", MANIFEST))
        self._check(
            self._call(
                "PUT",
                f"{self.base}/manifests/{tag or digest}",
                content=body,
                headers={"Content-Type": media},
            ),
            f"manifest {tag or digest}",
        )
        return digest

    def manifest(self, target: str) -> tuple[dict[str, Any], str]:
        """``(manifest, digest)``; bounded, and checked against ``target`` when a digest."""
        response = self._check(
            self._call(
                "GET",
                f"{self.base}/manifests/{target}",
                headers={"Accept": f"{MANIFEST}, {INDEX}, {DOCKER_MANIFEST}"},
            ),
            f"manifest {target}",
        )
        body = response.content
        if len(body) > MAX_MANIFEST_BYTES:
            raise IntegrityError(f"manifest {target} is over {MAX_MANIFEST_BYTES} bytes")
        digest = sha256_digest(body)
        if target.startswith("sha256:") and not hmac.compare_digest(digest, target):
            raise IntegrityError(f"manifest {target} has digest {digest}: refused")
        try:
            return json.loads(body), digest
        except ValueError:
            raise IntegrityError(f"manifest {target} is not JSON") from None

    def blob_to(self, desc: dict[str, Any], dest: Path, max_bytes: int) -> None:
        """Download a blob into ``dest``; the size and digest are checked before it is kept.

        A file already at ``dest`` with the right digest is kept (a resumed pull).
        """
        digest, size = str(desc["digest"]), int(desc["size"])
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest) or not 0 <= size <= max_bytes:
            raise IntegrityError(f"layer {digest} ({size} bytes) is refused")
        if dest.is_file() and _file_digest(dest) == digest:
            return
        part = dest.with_name(dest.name + ".part")
        hasher, got = hashlib.sha256(), 0
        try:
            with self.client.stream("GET", f"{self.base}/blobs/{digest}") as response:
                self._check(response, f"blob {digest}")
                with part.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        got += len(chunk)
                        if got > size:
                            raise IntegrityError(f"blob {digest} is longer than its {size} bytes")
                        hasher.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"download of {digest} failed: {exc}") from None
        if not hmac.compare_digest("sha256:" + hasher.hexdigest(), digest) or got != size:
            part.unlink(missing_ok=True)
            raise IntegrityError(f"blob {digest} does not match its digest: refused")
        part.replace(dest)

    def blob_bytes(self, desc: dict[str, Any], max_bytes: int) -> bytes:
        """A small blob in memory, digest checked."""
        response = self._check(self._call("GET", f"{self.base}/blobs/{desc['digest']}"), "blob")
        data = response.content
        if len(data) > max_bytes or not hmac.compare_digest(sha256_digest(data), desc["digest"]):
            raise IntegrityError(f"blob {desc['digest']} does not match its descriptor: refused")
        return data

    def referrers(self, digest: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``digest`` (API, else tag schema)."""
        response = self._call("GET", f"{self.base}/referrers/{digest}", headers={"Accept": INDEX})
        if response.status_code == 200 and response.headers.get("content-type", "").startswith(
            INDEX
        ):
            return list(response.json().get("manifests", []))
        try:
            index, _ = self.manifest(digest.replace(":", "-"))
        except NotFoundError:
            return []
        return list(index.get("manifests", []))

    def add_referrer(self, subject: str, desc: dict[str, Any]) -> None:
        """Record ``desc`` in the referrers tag schema index (for registries without the API)."""
        tag = subject.replace(":", "-")
        try:
            index, _ = self.manifest(tag)
        except NotFoundError:
            index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
        kept = [m for m in index.get("manifests", []) if m.get("digest") != desc["digest"]]
        self.push_manifest({**index, "manifests": [*kept, desc]}, tag=tag)


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return "sha256:" + hasher.hexdigest()
