"""Parquet files in, Parquet files out on Spark, without Spark's row path.

``df.mapInArrow`` (:func:`amlpkg.spark.score`) makes every row cross Spark's data path:
the JVM decodes Parquet into rows, turns them into Arrow, sends them through a socket to
the Python worker, and turns the scored Arrow batch back into rows. Measured on the
benchmark's cluster that path alone runs slower per core than ONNX Runtime scores a CNN
and far slower than it scores a small model (``benchmarks/RESULTS.md``), so scoring there
cannot get near in-process ONNX Runtime per core.

When both ends are Parquet files every executor can open, Spark is only needed to
schedule, place and retry the work: here each task is a group of the input's row groups,
which the Python worker reads with pyarrow (only the columns it needs), scores with the
same batch function and writes as one Parquet part file. No row goes through the JVM.
Parts are written under a hidden staging folder beside the output (a retried task
rewrites its own part) and moved in place once every task succeeded, with ``_SUCCESS``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from amlpkg.batch.kernel import score_batches, session_for
from amlpkg.batch.model import ResolvedModel
from amlpkg.batch.parquet_in import open_parquet, parquet_batches
from amlpkg.batch.parquet_out import ParquetOut
from amlpkg.batch.plan import InputsSpec, OutputsSpec, ScorePlan
from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.spark.session import call_spark, settle_worker, task_cores

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import SparkSession

TASKS_PER_CORE = 2  # a little slack for uneven row groups and a slower executor


@dataclass(frozen=True)
class Piece:
    """One task's share of the input: row groups of one file."""

    path: str
    row_groups: tuple[int, ...]
    rows: int


def parquet_files(source: Path) -> list[Path]:
    """``source`` itself, or the Parquet part files of the folder ``source`` (sorted)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise NotFoundError(f"input {source} does not exist", hint="check the path")
    files = sorted(
        p for p in source.rglob("*.parquet") if not p.name.startswith(("_", ".")) and p.is_file()
    )
    if not files:
        raise InvalidArgumentError(f"{source} holds no .parquet files")
    return files


def split_pieces(files: list[Path], tasks: int) -> list[Piece]:
    """The files' row groups cut into about ``tasks`` pieces of similar row counts, in
    order; a row group is never split, and a piece never spans two files."""
    groups = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        groups += [(str(path), i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    total = sum(rows for _, _, rows in groups)
    target = max(1, -(-total // max(tasks, 1)))
    pieces: list[Piece] = []
    current: list[tuple[str, int, int]] = []

    def close() -> None:
        rows = sum(g[2] for g in current)
        pieces.append(Piece(current[0][0], tuple(g[1] for g in current), rows))
        current.clear()

    for group in groups:
        if current and (current[0][0] != group[0] or sum(g[2] for g in current) >= target):
            close()
        current.append(group)
    if current:
        close()
    return pieces


def _score_piece(
    plan: ScorePlan, model: Any, piece: Piece, columns: list[str], *, path: str, batch_rows: int
) -> int:
    """Read, score and write ``piece`` as the Parquet file ``path``; the rows written."""
    cores = task_cores()
    session = session_for(plan.digest, lambda: model.value, threads=cores)
    settle_worker()
    reader = open_parquet(piece.path)
    # pyarrow's thread pool only for a task of several cores: on one it takes the other
    # tasks' cores (and its hand-offs cost more than they save on 1-core tasks).
    batches: Iterator[pa.RecordBatch] = parquet_batches(
        reader, batch_rows, row_groups=piece.row_groups, columns=columns, use_threads=cores > 1
    )
    scored = score_batches(session, plan, batches, batch_rows)
    first = next(scored, None)
    if first is None:  # no rows: an empty part with the output's schema
        read = pa.schema([reader.schema_arrow.field(c) for c in columns])
        schema = plan.output_schema(read)
    else:
        schema = first.schema
    rows = 0
    writer = ParquetOut(path, schema, like=reader.metadata)  # passed-through columns as read
    for out in itertools.chain([first] if first is not None else [], scored):
        writer.write(out)
        rows += out.num_rows
    writer.close()
    return rows


def _task(plan: ScorePlan, model: Any, columns: list[str], staging: str, batch_rows: int) -> Any:
    """The function every task runs (a closure Spark pickles to the executors)."""

    def run(item: tuple[int, Piece]) -> int:
        from pyspark import TaskContext

        index, piece = item
        context = TaskContext.get()
        attempt = context.attemptNumber() if context is not None else 0
        part = f"{staging}/part-{index:05d}.parquet"
        scratch = f"{part}.{attempt}.tmp"
        rows = _score_piece(plan, model, piece, columns, path=scratch, batch_rows=batch_rows)
        os.replace(scratch, part)
        return rows

    return run


def score_parquet_files(
    spark: SparkSession,
    resolved: ResolvedModel,
    source: Path,
    target: Path,
    *,
    inputs: InputsSpec = None,
    outputs: OutputsSpec = None,
    keep: Sequence[str] | None = None,
    batch_rows: int = 10_000,
    overwrite: bool = False,
) -> int:
    """Score the Parquet file or folder ``source`` into the Parquet folder ``target`` on
    ``spark``'s executors (both paths as every executor sees them); the rows scored."""
    files = parquet_files(source)
    schema = pq.read_schema(files[0]).remove_metadata()
    for other in files[1:]:
        if not pq.read_schema(other).remove_metadata().equals(schema):
            raise InvalidArgumentError(
                f"{other.name} has another schema than {files[0].name}",
                hint="score folders whose part files share one schema",
            )
    plan = resolved.plan(schema, inputs, outputs, keep)
    context = spark.sparkContext
    pieces = split_pieces(files, context.defaultParallelism * TASKS_PER_CORE)
    staging = target.parent / f".{target.name}.scoring-{uuid.uuid4().hex[:12]}"
    staging.mkdir(parents=True)
    broadcast = context.broadcast(resolved.data)
    try:
        task = _task(plan, broadcast, plan.read_names(schema), str(staging), batch_rows)
        items = list(enumerate(pieces))
        counts = call_spark(
            lambda: context.parallelize(items, max(len(items), 1)).map(task).collect(),
            f"score {source}",
        )
        (staging / "_SUCCESS").touch()
        if target.exists() and overwrite:
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        staging.rename(target)
    finally:
        broadcast.unpersist()  # the executors' copies; workers keep their sessions cached
        shutil.rmtree(staging, ignore_errors=True)
    return int(sum(counts))
