"""Triton's system shared-memory extension: regions registered by name, read and written.

A process on the same host (a camera app beside the scoring module, perf_analyzer
``--shared-memory system``, tritonclient's ``shared_memory`` utilities) puts tensors in a
POSIX shared-memory object and sends only where they are. Everything a client names is
untrusted, so:

- a key is a POSIX shm name (``/name``, no other slash) and opens only
  ``/dev/shm/<name>``: never another path, never through a symlink (``O_NOFOLLOW``),
  never a FIFO or device (non-blocking open, then it must be a regular file);
- the object must belong to the server's own user, so a caller cannot make the server
  read or overwrite another user's shared memory;
- every access is bounds-checked against the registered region, and the object's size
  is re-checked before each access (a truncated object would otherwise crash the
  process with SIGBUS);
- the number of regions is capped (each holds a file descriptor and a mapping).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from amlpkg.errors import AlreadyExistsError, NotFoundError
from amlpkg.runtime.errors import InvalidInputError

SHM_ROOT = Path("/dev/shm")
MAX_REGIONS = 256
_KEY = re.compile(r"/?[A-Za-z0-9_.\-]{1,200}")


@dataclass(frozen=True, slots=True)
class RegionStatus:
    """One registered region, as Triton's status calls report it."""

    name: str
    key: str
    offset: int
    byte_size: int


class _Region:
    def __init__(self, status: RegionStatus, fd: int, mapping: mmap.mmap) -> None:
        self.status = status
        self.fd = fd
        self.mapping = mapping

    def check_span(self, offset: int, size: int, what: str) -> int:
        """The absolute start in the mapping of ``[offset, offset + size)`` of the region."""
        region = self.status
        if offset < 0 or size < 0 or offset + size > region.byte_size:
            raise InvalidInputError(
                f"{what}: offset {offset} + byte size {size} is outside shared memory region "
                f"{region.name!r} of {region.byte_size} bytes",
                hint="offset and byte size are relative to the registered region",
            )
        # The owner may have shrunk the object since registration: touching pages past
        # its end would kill the whole server with SIGBUS.
        if os.fstat(self.fd).st_size < region.offset + region.byte_size:
            raise InvalidInputError(
                f"{what}: shared memory region {region.name!r} was truncated by its owner",
                hint="unregister and register it again",
            )
        return region.offset + offset

    def close(self) -> None:
        self.mapping.close()
        os.close(self.fd)


def _integer(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInputError(f"{what} must be a non-negative integer, got {value!r}")
    return value


class SharedMemoryRegistry:
    """The regions registered with this server (system shared memory only).

    With ``book`` (a private folder the worker processes of one server share), each
    registration is also written there, so a region registered through one worker's
    connection is found by every worker: each maps it on first use, and drops its
    mapping once the entry is gone or replaced (one ``stat`` per lookup).
    """

    def __init__(
        self, root: Path = SHM_ROOT, max_regions: int = MAX_REGIONS, book: Path | None = None
    ) -> None:
        self._root = root
        self._max_regions = max_regions
        self._book = book
        self._regions: dict[str, _Region] = {}
        self._entry_ids: dict[str, int] = {}  # region name -> inode of its book entry

    def register(self, name: str, key: str, offset: object, byte_size: object) -> None:
        """Map ``byte_size`` bytes at ``offset`` of the shm object ``key`` as region ``name``."""
        start = _integer(offset, "offset")
        size = _integer(byte_size, "byte_size")
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidInputError("a shared memory region needs a name of 1 to 256 characters")
        if name in self._names():
            raise AlreadyExistsError(f"shared memory region '{name}' already in manager")
        if len(self._names()) >= self._max_regions:
            raise InvalidInputError(
                f"{self._max_regions} shared memory regions are registered already",
                hint="unregister regions that are no longer used",
            )
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key.strip("/") in (".", ".."):
            raise InvalidInputError(
                f"Unable to open shared memory region: {key!r} is not a POSIX shared memory "
                "name ('/name', letters, digits, '_', '.', '-')"
            )
        region = self._map(RegionStatus(name, key, start, size))
        if self._book is not None:
            try:
                self._entry_ids[name] = self._publish(region.status)
            except BaseException:
                region.close()
                raise
        self._regions[name] = region

    def _map(self, status: RegionStatus) -> _Region:
        fd = self._open(status.key)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise InvalidInputError(
                    f"Unable to open shared memory region: {status.key!r} is not a shared "
                    "memory object of the server's user"
                )
            if status.byte_size == 0 or status.offset + status.byte_size > info.st_size:
                raise InvalidInputError(
                    f"shared memory region {status.name!r}: offset {status.offset} + byte_size "
                    f"{status.byte_size} does not fit the {info.st_size} bytes of {status.key!r}"
                )
            mapping = mmap.mmap(fd, status.offset + status.byte_size, mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)
            raise
        return _Region(status, fd, mapping)

    def _open(self, key: str) -> int:
        path = self._root / key.lstrip("/")
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        try:
            return os.open(path, flags)
        except OSError as exc:
            raise InvalidInputError(
                f"Unable to open shared memory region: {key!r}: {exc.strerror}",
                hint="create it with shm_open (tritonclient.utils.shared_memory) first",
            ) from None

    # The book: one small JSON file per region, named by a hash of the region's name.

    def _entry(self, name: str) -> Path:
        assert self._book is not None
        return self._book / hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()

    def _publish(self, status: RegionStatus) -> int:
        """Write the entry of a new region; AlreadyExists if another worker has one."""
        entry = self._entry(status.name)
        scratch = entry.with_name(f".{entry.name}.{os.getpid()}")
        scratch.write_text(json.dumps(dataclasses.asdict(status)), encoding="utf-8")
        try:
            os.link(scratch, entry)  # atomic, and fails if the name was taken meanwhile
        except FileExistsError:
            raise AlreadyExistsError(
                f"shared memory region '{status.name}' already in manager"
            ) from None
        finally:
            scratch.unlink(missing_ok=True)
        return os.stat(entry).st_ino

    def _read_entry(self, path: Path) -> RegionStatus | None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return RegionStatus(raw["name"], raw["key"], raw["offset"], raw["byte_size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _book_entries(self) -> list[RegionStatus]:
        assert self._book is not None
        found = (self._read_entry(p) for p in self._book.iterdir() if not p.name.startswith("."))
        return sorted((s for s in found if s is not None), key=lambda s: s.name)

    def _names(self) -> set[str]:
        if self._book is None:
            return set(self._regions)
        return {s.name for s in self._book_entries()}

    def _drop(self, name: str) -> None:
        region = self._regions.pop(name, None)
        self._entry_ids.pop(name, None)
        if region is not None:
            region.close()

    def status(self, name: str | None = None) -> list[RegionStatus]:
        """Every region, or the one named (unknown name: 404)."""
        if name:
            return [self._get(name).status]
        if self._book is not None:
            return self._book_entries()
        return [r.status for r in self._regions.values()]

    def unregister(self, name: str | None = None) -> None:
        """Drop one region, or all of them when ``name`` is empty (as Triton does)."""
        if self._book is None:
            names = [name] if name else list(self._regions)
        else:
            names = [name] if name else [s.name for s in self._book_entries()]
        for each in names:
            if self._book is not None:
                self._entry(each).unlink(missing_ok=True)
            self._drop(each)

    def _get(self, name: object) -> _Region:
        region = self._regions.get(name) if isinstance(name, str) else None
        if self._book is not None and isinstance(name, str):
            region = self._current(name, region)
        if region is None:
            raise NotFoundError(
                f"Unable to find system shared memory region: '{name}'",
                hint="register it first (/v2/systemsharedmemory/region/<name>/register)",
            )
        return region

    def _current(self, name: str, region: _Region | None) -> _Region | None:
        """The region as the book has it now: mapped here on first use, dropped when gone."""
        entry = self._entry(name)
        try:
            entry_id = os.stat(entry).st_ino
        except OSError:
            self._drop(name)
            return None
        if region is not None and self._entry_ids.get(name) == entry_id:
            return region
        self._drop(name)  # unregistered and registered again through another worker
        status = self._read_entry(entry)
        if status is None or status.name != name:
            return None
        region = self._map(status)
        self._regions[name] = region
        self._entry_ids[name] = entry_id
        return region

    def read(self, region: object, offset: object, size: object, what: str) -> bytes:
        """A copy of ``size`` bytes at ``offset`` of ``region`` (the client may rewrite it)."""
        found = self._get(region)
        start = found.check_span(
            _integer(offset, f"{what}: shared_memory_offset"),
            _integer(size, f"{what}: shared_memory_byte_size"),
            what,
        )
        return found.mapping[start : start + int(size)]  # type: ignore[call-overload]

    def write(
        self, region: object, offset: object, capacity: object, data: bytes, what: str
    ) -> None:
        """Write ``data`` at ``offset`` of ``region``; it must fit ``capacity`` bytes."""
        found = self._get(region)
        room = _integer(capacity, f"{what}: shared_memory_byte_size")
        if len(data) > room:
            raise InvalidInputError(
                f"shared memory size specified with the request for {what} ({room} bytes) "
                f"should be at least {len(data)} bytes to hold the results"
            )
        start = found.check_span(_integer(offset, f"{what}: shared_memory_offset"), room, what)
        found.mapping[start : start + len(data)] = data

    def close(self) -> None:
        """Drop this process's mappings (server shutdown); a shared book stays as it is,
        for the other workers."""
        for name in list(self._regions):
            self._drop(name)
