"""Content-addressed artifact store: ``<home>/artifacts/sha256/ab/abcdef...``.

A write copies into a temporary file in the destination folder while hashing,
fsyncs it, renames it into place and fsyncs the folder, so a crash at any moment
leaves either no file or the whole file under its digest; never a partial one.
Temporary files start with ``.tmp-`` and are never taken for artifacts. Reads
verify the digest, so a corrupted blob raises :class:`IntegrityError`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from amlpkg.errors import IntegrityError, InvalidArgumentError, NotFoundError
from amlpkg.release import sha256_file

_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
TEMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Staged:
    """A fully written, fsynced temporary copy waiting to be committed."""

    path: Path
    sha256: str
    size: int


class Artifacts(Protocol):
    """What every artifact store offers: blobs keyed by sha256, verified on read.

    :class:`ArtifactStore` (a local folder) and :class:`amlpkg.store.s3.S3ArtifactStore`
    (a bucket, with a local cache of verified copies) implement it.
    """

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a copy of ``source``; return ``(sha256, size)``."""
        ...

    def staged_file(self, source: Path) -> AbstractContextManager[Staged]:
        """A verified local copy of ``source``, stored when the block exits normally."""
        ...

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return ``(sha256, size)``."""
        ...

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store what ``stream`` yields until EOF; return ``(sha256, size)``."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob with ``digest`` is stored."""
        ...

    def verified_path(self, digest: str) -> Path:
        """A local file with the blob's content, checked against ``digest``."""
        ...

    def read_bytes(self, digest: str) -> bytes:
        """The verified content of the blob."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest."""
        ...


class ArtifactStore:
    """Blobs keyed by their sha256 under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        if not _DIGEST.match(digest):
            raise InvalidArgumentError(f"not a sha256 hex digest: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a copy of ``source``; return ``(sha256, size)``. Identical content is kept once."""
        with self.staged_file(source) as staged:
            return staged.sha256, staged.size

    @contextmanager
    def staged_file(self, source: Path) -> Iterator[Staged]:
        """Copy ``source`` to a temporary file in the store, to check before it is committed.

        The copy is committed under its digest when the block exits normally and
        deleted when it raises; checks on ``staged.path`` see exactly the bytes
        that will be stored, whatever happens to ``source`` meanwhile.
        """
        try:
            handle = source.open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"no such file: {source}") from exc
        except IsADirectoryError as exc:
            raise InvalidArgumentError(f"{source} is a folder, not a file") from exc
        with handle:
            staged = self._stage(handle)
        try:
            yield staged
            self._commit(staged)
        finally:
            staged.path.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return ``(sha256, size)``."""
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store what ``stream`` yields until EOF; return ``(sha256, size)``."""
        staged = self._stage(stream)
        try:
            self._commit(staged)
        finally:
            staged.path.unlink(missing_ok=True)
        return staged.sha256, staged.size

    def _stage(self, stream: BinaryIO) -> Staged:
        staging = self.root / "sha256"
        staging.mkdir(parents=True, exist_ok=True)
        # Stage in the store's own file system so the final rename is atomic.
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=staging)
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Staged(tmp, digest.hexdigest(), size)

    def _commit(self, staged: Staged) -> None:
        final = self.path_for(staged.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and self._matches(final, staged.sha256):
            return  # deduplicated; the caller removes the staged copy
        os.chmod(staged.path, 0o444)
        os.replace(staged.path, final)
        # The rename changed both folders: make both entries durable.
        _fsync_dir(final.parent)
        _fsync_dir(staged.path.parent)

    @staticmethod
    def _matches(path: Path, digest: str) -> bool:
        return sha256_file(path)[0] == digest

    def exists(self, digest: str) -> bool:
        """Whether a blob with ``digest`` is stored (not verified)."""
        return self.path_for(digest).is_file()

    def verified_path(self, digest: str) -> Path:
        """The path of the blob with ``digest`` after checking its content matches."""
        path = self.path_for(digest)
        if not path.is_file():
            raise NotFoundError(
                f"artifact {digest} is missing from the store {self.root}",
                hint="the workspace was edited by hand or is incomplete",
            )
        actual, _ = sha256_file(path)
        if actual != digest:
            raise IntegrityError(
                f"artifact {path} is corrupt: its sha256 is {actual}, expected {digest}",
                hint="restore it from a backup or register the model again",
            )
        return path

    def read_bytes(self, digest: str) -> bytes:
        """The verified content of the blob with ``digest``."""
        return self.verified_path(digest).read_bytes()

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest; temporary files left by crashed writers are skipped."""
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for shard in sorted(base.iterdir()):
            if shard.is_dir():
                for blob in sorted(shard.iterdir()):
                    if _DIGEST.match(blob.name):
                        yield blob.name

    def remove_stale_temp_files(self) -> int:
        """Delete temporary files left by killed writers; return how many were removed.

        Only call this when no other process is writing to the store.
        """
        base = self.root / "sha256"
        removed = 0
        if base.is_dir():
            for tmp in base.glob(f"{TEMP_PREFIX}*"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed
