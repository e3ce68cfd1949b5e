"""Reading Parquet for scoring: a file's batches, without keeping what was read.

``pq.ParquetFile`` pre-buffers by default (pyarrow 26): it reads the column chunks of
every row group an iteration asks for ahead and keeps them cached until the iteration
ends. Reading a file of 8,192 raw 3x64x64 float32 images (48 KiB a row) in batches of 16
so peaked at the whole 390 MB: every row came in fresh memory the kernel had to fault
in, about four times the CPU of the read itself with jemalloc and ten times with
mimalloc. Opened without pre-buffering, the reader holds about a row group, the
allocator hands the same memory back group after group and the first read of a file
costs what later ones do (there is no other I/O to overlap: the batch function waits
for every batch anyway). The file is memory-mapped: pages are decompressed straight from
the page cache instead of being copied into a read buffer first, which gave the cluster's
CNN jobs about 3% more rows per CPU-second (0.75-0.78x of in-process ONNX Runtime against
0.70-0.75x, interleaved runs).

Batches are read :data:`READ_BYTES` at a time, a whole multiple of the model's batch:
the batch function converts each once and runs the model on slices of it, so small model
batches (16 images) do not pay the reader's, the conversion's and the writer's per-batch
costs 16 rows at a time, and the model still sees the same rows together as when it is
fed ``model_rows`` at a time from the start (its results can differ in the last bits
with how rows are grouped). Measured on the CNN file to file: 4 MiB reads did 2% more
rows per CPU-second than 768 KiB (16 rows); 16 MiB did worse on large row groups, where
building each batch's binary column re-allocates it (three times its size at the peak).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

READ_BYTES = 4 * 1024 * 1024


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """``path`` opened for streaming: memory-mapped, no pre-buffering (the module's note)."""
    return pq.ParquetFile(str(path), pre_buffer=False, memory_map=True)


def read_rows(meta: pq.FileMetaData, model_rows: int, max_bytes: int = READ_BYTES) -> int:
    """Rows per batch read from a file with ``meta`` for a model run on ``model_rows``: the
    most whole multiples of ``model_rows`` that fit ``max_bytes``, at least one."""
    per_row = 1
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        per_row = max(per_row, group.total_byte_size // max(group.num_rows, 1))
    return model_rows * max(1, max_bytes // per_row // model_rows)


def parquet_batches(
    source: str | Path | pq.ParquetFile,
    model_rows: int,
    *,
    columns: Sequence[str] | None = None,
    row_groups: Iterable[int] | None = None,
    use_threads: bool = False,
    read_bytes: int = READ_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``source``'s ``row_groups`` (all by default) and ``columns`` (all
    by default), for a model run on ``model_rows`` rows (see :func:`read_rows`; about
    ``read_bytes`` a batch).

    ``source``: a path, or a file from :func:`open_parquet`. ``use_threads``: decode
    columns on pyarrow's thread pool; worth it only when the caller has cores to spare (a
    1-core Spark task has none).
    """
    reader = source if isinstance(source, pq.ParquetFile) else open_parquet(source)
    groups = list(range(reader.num_row_groups) if row_groups is None else row_groups)
    if not groups:
        return
    yield from reader.iter_batches(
        batch_size=read_rows(reader.metadata, model_rows, read_bytes), row_groups=groups,
        columns=None if columns is None else list(columns), use_threads=use_threads,
    )  # fmt: skip
