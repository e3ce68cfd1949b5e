"""Which model version scored which dataset, as lineage edges.

A dataset node's id names where it lives and what it held: ``LOCATION@sha256:HEX``
when its files could be hashed here (local files up to :data:`MAX_HASHED_BYTES`),
else ``LOCATION#rows=N``. Two edges per scoring:
``model_version NAME:V --scored--> dataset IN`` and ``dataset IN --scored_into--> dataset OUT``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from amlpkg.store.lineage_edges import add_edge
from amlpkg.store.workspace import Workspace

DATASET_KIND = "dataset"
MODEL_VERSION_KIND = "model_version"
MAX_HASHED_BYTES = 8 * 1024**3
_CHUNK = 1024 * 1024


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    # Spark and pyarrow datasets: part files; their _SUCCESS/.crc markers hold no data.
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))


def files_digest(paths: Sequence[Path], root: Path | None = None) -> str | None:
    """sha256 of the files (one file: its own sha256), or None past the size cap."""
    if sum(p.stat().st_size for p in paths) > MAX_HASHED_BYTES:
        return None
    outer = hashlib.sha256()
    for path in paths:
        inner = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                inner.update(chunk)
        if len(paths) == 1:
            return inner.hexdigest()
        name = path.relative_to(root).as_posix() if root else path.name
        outer.update(f"{name}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def dataset_id(location: str, files: Sequence[Path] = (), rows: int | None = None) -> str:
    """The node id of a dataset at ``location`` made of local ``files`` (hashed) or ``rows``."""
    root = Path(location) if files and not Path(location).is_file() else None
    digest = files_digest(files, root) if files else None
    if digest is not None:
        return f"{location}@sha256:{digest}"
    return f"{location}#rows={rows if rows is not None else 'unknown'}"


def local_dataset_id(path: Path, rows: int | None = None) -> str:
    """The node id of a local file or folder of part files."""
    resolved = path.resolve()
    return dataset_id(str(resolved), _files(resolved), rows)


def record_scoring(ws: Workspace, model_ref: str, input_id: str, output_id: str | None) -> None:
    """Record that ``model_ref`` scored the input dataset (into the output, if written)."""
    add_edge(ws, (MODEL_VERSION_KIND, model_ref), (DATASET_KIND, input_id), "scored")
    if output_id is not None:
        add_edge(ws, (DATASET_KIND, input_id), (DATASET_KIND, output_id), "scored_into")
