"""Large files straight to the team server's bucket (presigned URLs), then a commit.

A file of at least :func:`threshold` bytes is not streamed through the server: the
client asks it for presigned URLs (``POST /uploads`` with the file's sha256 and
size), sends the bytes to the bucket (one PUT signed with the sha256, or the parts
of a multipart upload), and the caller then commits the upload, which the server
checks (size and sha256) before recording anything. A server that keeps its
artifacts in a folder answers 409 and the caller streams the file as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from amlpkg.errors import AlreadyExistsError, InvalidArgumentError, UnavailableError

if TYPE_CHECKING:
    from amlpkg.trainer.remote.client import TeamClient

THRESHOLD_ENV = "AMLPKG_DIRECT_UPLOAD_BYTES"
DEFAULT_THRESHOLD = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_TIMEOUT = httpx.Timeout(300.0, connect=10.0)  # per read or write, not the whole part
_S3_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")


def threshold() -> int:
    """Files this large or larger go straight to the bucket (``AMLPKG_DIRECT_UPLOAD_BYTES``)."""
    raw = os.environ.get(THRESHOLD_ENV, "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    if not raw.isdigit():
        raise InvalidArgumentError(
            f"{THRESHOLD_ENV}={raw[:40]!r} is not a number of bytes", hint="e.g. 8388608"
        )
    return int(raw)


def _range_chunks(path: Path, offset: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(offset)
        left = length
        while left > 0:
            chunk = source.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _put(http: httpx.Client, url: str, file: Path, span: tuple[int, int], headers: Any) -> str:
    """Send the ``(offset, length)`` span of ``file`` to a presigned URL; its ETag."""
    offset, length = span
    sent = {**headers, "Content-Length": str(length)}
    try:
        response = http.put(url, content=_range_chunks(file, offset, length), headers=sent)
    except httpx.TransportError as exc:
        raise UnavailableError(
            f"cannot reach the bucket to upload {file.name}: {type(exc).__name__}",
            hint="the server's S3 endpoint must be reachable from this machine",
        ) from None
    if response.is_error:
        found = _S3_CODE.search(response.text)
        code = found.group(1) if found else response.reason_phrase
        raise UnavailableError(
            f"the bucket refused {file.name}: {response.status_code} {code}",
            hint="retry; BadDigest means the file changed while it was being sent",
        )
    return str(response.headers.get("etag", ""))


def send(client: TeamClient, file: Path, sha256: str, size: int) -> dict[str, Any] | None:
    """Send ``file`` to the bucket; the commit body's upload part (``upload_id``, ``sha256``,
    ``size``, ``multipart_id``, ``etags``), or None when the server has no bucket."""
    try:
        grant = client.request(
            "POST", "/uploads", json={"sha256": sha256, "size": size}, idempotent=False
        ).json()
    except AlreadyExistsError:  # 409: artifacts in a folder, files go through the server
        return None
    part = int(grant["part_bytes"])
    etags: list[str] = []
    # A client of its own: the URLs carry their signature, and the token stays with the server.
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as http:
        for number, url in enumerate(grant["urls"]):
            offset = number * part
            length = min(part, size - offset)
            etags.append(_put(http, url, file, (offset, length), grant["headers"]))
    multipart = grant["multipart_id"]
    return {
        "upload_id": grant["upload_id"],
        "sha256": sha256,
        "size": size,
        "multipart_id": multipart,
        "etags": etags if multipart else [],
    }
