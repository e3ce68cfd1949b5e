"""Streaming a request body to a temporary file: bounded, hashed, checked.

The body is never held in memory: it is written chunk by chunk while counted
and hashed, refused as soon as it passes the limit, and its sha256 compared with
the one the client declared before anything is stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from starlette.requests import ClientDisconnect, Request

from amlpkg.errors import InvalidArgumentError, PayloadTooLargeError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
TEMP_PREFIX = ".upload-"
_STALE_S = 24 * 3600


def check_artifact_path(path: str) -> str:
    """``path`` if it is a safe relative artifact path (``dir/file.ext``)."""
    pure = PurePosixPath(path)
    if (
        not path
        or len(path) > 1024
        or "\\" in path
        or not path.isprintable()
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise InvalidArgumentError(
            f"invalid artifact path {path[:100]!r}",
            hint="use a relative path like model/net.onnx: no leading '/', no '.' or '..'"
            " parts, no backslashes or control characters, at most 1024 characters",
        )
    return path


def _declared_length(request: Request, limit: int) -> None:
    text = request.headers.get("content-length")
    if text is not None and (not text.isdigit() or int(text) > limit):
        raise PayloadTooLargeError(
            f"the upload is larger than this server's limit of {limit} bytes",
            hint="raise AMLPKG_TEAM_MAX_ARTIFACT_BYTES / _MAX_MODEL_BYTES on the server",
        )


async def receive(request: Request, folder: Path, *, limit: int, sha256: str) -> tuple[Path, int]:
    """Write the body to a new file in ``folder``; return ``(path, size)``.

    The caller owns the file and must delete it. Raises 413 past ``limit`` and
    400 when the content's sha256 is not ``sha256``; the file is gone then.
    """
    if not SHA256.match(sha256):
        raise InvalidArgumentError("sha256 must be 64 lowercase hex characters")
    _declared_length(request, limit)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"the upload is larger than this server's limit of {limit} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise InvalidArgumentError(
                f"the upload's sha256 is {digest.hexdigest()}, not the declared {sha256}",
                hint="the body was changed or cut in transit; send it again",
            )
    except ClientDisconnect:
        path.unlink(missing_ok=True)
        raise InvalidArgumentError("the client went away during the upload") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size


@contextmanager
def named(temp: Path, filename: str) -> Iterator[Path]:
    """Move a received file to ``<fresh folder>/filename`` for the block, then delete both."""
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=temp.parent))
    try:
        target = folder / filename
        os.replace(temp, target)
        yield target
    finally:
        temp.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale(folder: Path, now: float | None = None) -> int:
    """Delete uploads left by a killed server over a day ago; return how many.

    Only old ones: another server on the same store may be receiving right now.
    """
    if not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - _STALE_S
    removed = 0
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
