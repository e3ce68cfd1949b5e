"""Reproducible layer tarballs: the same files always give the same bytes.

Entries are sorted by path, parents come before children, owners are root (uid/gid 0,
no user or group names), modes are normalized (directories and executables 0755,
other files 0644, links as they are), every mtime is ``SOURCE_DATE_EPOCH``, and the
gzip stream has no file name, mtime 0 and a fixed compression level. Hard links are
written as plain files so the layer does not depend on how the host laid them out.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class Layer:
    """A written layer: the compressed file, its digest and the uncompressed diff id."""

    path: Path
    digest: str
    diff_id: str
    size: int

    def descriptor(self) -> dict[str, object]:
        """The OCI descriptor of the compressed layer."""
        return {"mediaType": LAYER_GZIP, "digest": self.digest, "size": self.size}


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``target``."""

    def __init__(self, target: io.BufferedIOBase | io.RawIOBase | gzip.GzipFile) -> None:
        self.target = target
        self.hasher = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hasher.update(data)
        self.count += len(data)
        self.target.write(data)
        return len(data)


def _entries(root: Path, prefix: PurePosixPath) -> Iterator[tuple[str, Path]]:
    """``(archive name, host path)`` under ``root``, placed at ``prefix``, sorted by name."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in [*dirs, *files]:
            path = here / name
            found.append((str(prefix / path.relative_to(root).as_posix()), path))
    yield from sorted(found)


def _parents(prefix: PurePosixPath) -> list[str]:
    if str(prefix) == ".":
        return []  # the image's root itself: never an entry
    return [str(p) for p in reversed(prefix.parents) if str(p) not in (".", "/")] + [str(prefix)]


def _info(name: str, path: Path | None, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = epoch
    if path is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        info.type, info.mode = tarfile.SYMTYPE, 0o777
        info.linkname = os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        # Shared scratch folders (/tmp) keep their sticky bit; others are 0755.
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if st.st_mode & stat.S_ISVTX else 0o755
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
        info.size = st.st_size
    else:
        raise ValueError(f"{name}: only files, folders and symbolic links go into a layer")
    return info


def write_layer(
    trees: dict[str, Path], dest: Path, epoch: int, owners: dict[str, int] | None = None
) -> Layer:
    """Write the folders ``trees`` (image path -> host folder) as one reproducible layer.

    The image paths' parent folders are written too (root, 0755), so the layer does
    not depend on the base having them. ``owners``: image folders (``/var/lib/x``)
    owned by that uid and gid instead of root (a state folder a non-root user writes).
    """
    owned = {path.strip("/"): uid for path, uid in (owners or {}).items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as raw:
        outer = _Hashing(raw)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=outer, compresslevel=COMPRESS_LEVEL, mtime=0
        ) as zipped:
            inner = _Hashing(zipped)
            with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                written: set[str] = set()
                for image_path, folder in sorted(trees.items()):
                    prefix = PurePosixPath(image_path.strip("/"))
                    for parent in _parents(prefix):
                        if parent not in written:
                            written.add(parent)
                            info = _info(parent, None, epoch)
                            info.uid = info.gid = owned.get(parent, 0)
                            archive.addfile(info)
                    for name, path in _entries(folder, prefix):
                        info = _info(name, path, epoch)
                        if info.isreg():
                            with path.open("rb") as handle:
                                archive.addfile(info, handle)
                        else:
                            archive.addfile(info)
        # tarfile's stream mode pads to a full record, then gzip flushes its trailer.
    return Layer(
        path=dest,
        digest="sha256:" + outer.hasher.hexdigest(),
        diff_id="sha256:" + inner.hasher.hexdigest(),
        size=outer.count,
    )
