"""The local engine: score a Parquet or CSV file (or folder of parts) in this process.

Batches stream from the reader through the batch function to the writer, so memory
stays at a few batches whatever the file's size. The output is written to a hidden
temporary file beside the target and renamed when complete: a failed or interrupted
scoring never leaves a half-written output behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from amlpkg.batch.kernel import score_batches, session_for
from amlpkg.batch.lineage import local_dataset_id
from amlpkg.batch.parquet_in import parquet_batches
from amlpkg.batch.parquet_out import ParquetOut
from amlpkg.batch.plan import InputsSpec, OutputsSpec
from amlpkg.batch.sites import scoring_site
from amlpkg.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError

FORMATS = ("parquet", "csv")
DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ScoreResult:
    """What a scoring wrote, and the lineage node ids it recorded."""

    model: str  # NAME:VERSION
    rows: int
    seconds: float
    output: str
    input_id: str
    output_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def file_format(path: Path, given: str | None = None) -> str:
    """``parquet`` or ``csv``: ``given``, else the suffix of the path or of its part files."""
    if given is not None:
        if given not in FORMATS:
            raise InvalidArgumentError(f"unknown format {given!r}", hint="use parquet or csv")
        return given
    names = [path.name]
    if path.is_dir():
        names = [p.name for p in path.iterdir() if not p.name.startswith(("_", "."))]
    for fmt in FORMATS:
        if names and all(n.endswith(f".{fmt}") for n in names):
            return fmt
    raise InvalidArgumentError(
        f"cannot tell whether {path} is Parquet or CSV",
        hint="name it *.parquet or *.csv, or give --format",
    )


def open_dataset(path: Path, fmt: str) -> pads.FileSystemDataset:
    """The dataset (one file or a folder of parts) at ``path``."""
    if not path.exists():
        raise NotFoundError(f"input {path} does not exist", hint="check the path")
    try:
        return pads.dataset(str(path), format=fmt)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgumentError(f"cannot read {path} as {fmt}: {exc}") from exc


def read_batches(
    dataset: pads.FileSystemDataset, fmt: str, batch_rows: int, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """The ``columns`` of ``dataset`` as record batches for a model run on ``batch_rows``.

    Parquet is read without pre-buffering (:func:`parquet_batches`: the dataset scanner,
    like pyarrow's default reader, keeps what it read ahead until the end).
    """
    if fmt != "parquet":
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)
        return
    for file in dataset.files:
        yield from parquet_batches(file, batch_rows, columns=columns, use_threads=True)


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """CSV has no arrays: a list column ``c`` of width k becomes ``c_0`` ... ``c_{k-1}``."""
    names: list[str] = []
    columns: list[pa.Array] = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if not pa.types.is_list(field.type):
            names.append(field.name)
            columns.append(column)
            continue
        width = len(column[0]) if len(column) else 0
        flat = column.flatten()
        for k in range(width):
            names.append(f"{field.name}_{k}")
            columns.append(flat.take(pa.array(range(k, len(flat), width))))
    return pa.RecordBatch.from_arrays(columns, names=names)


class _CsvOut:
    """A CSV file written batch by batch (the same calls as :class:`ParquetOut`)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pacsv.CSVWriter(str(path), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class _Writer:
    """Parquet or CSV writer opened on the first batch (CSV's columns depend on it);
    ``like``: a Parquet input, whose columns passed through keep its encodings."""

    def __init__(self, path: Path, fmt: str, like: pq.FileMetaData | None) -> None:
        self.path, self.fmt, self.like = path, fmt, like
        self.inner: Any = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self.fmt == "csv":
            batch = _csv_ready(batch)
        if self.inner is None:
            if self.fmt == "parquet":
                self.inner = ParquetOut(self.path, batch.schema, like=self.like)
            else:
                self.inner = _CsvOut(self.path, batch.schema)
        self.inner.write(batch)

    def close(self, schema: pa.Schema) -> None:
        if self.inner is None:  # no rows at all: still a valid file, with its header
            self.write(pa.RecordBatch.from_pylist([], schema=schema))
        self.inner.close()


def score_file(
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    inputs: InputsSpec = None,
    outputs: OutputsSpec = None,
    keep: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int = 0,
    input_format: str | None = None,
    output_format: str | None = None,
    overwrite: bool = False,
    home: str | Path | None = None,
) -> ScoreResult:
    """Score a Parquet/CSV dataset with a registered model into a new Parquet/CSV file."""
    if batch_rows < 1:
        raise InvalidArgumentError("the batch size must be at least 1 row")
    source, target = Path(input_path), Path(output_path)
    in_fmt = file_format(source, input_format)
    out_fmt = output_format or ("csv" if target.suffix == ".csv" else "parquet")
    file_format(target, out_fmt)
    if target.exists() and not overwrite:
        raise AlreadyExistsError(f"output {target} exists", hint="remove it or pass --overwrite")
    started = time.perf_counter()
    with scoring_site(home) as site:
        resolved = site.resolve(model)
        dataset = open_dataset(source, in_fmt)
        schema = dataset.schema
        plan = resolved.plan(schema, inputs, outputs, keep)
        batches = read_batches(dataset, in_fmt, batch_rows, plan.read_names(schema))
        session = session_for(resolved.digest, lambda: resolved.data, threads=threads)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        like = pq.read_metadata(dataset.files[0]) if in_fmt == "parquet" and dataset.files else None
        writer = _Writer(partial, out_fmt, like)
        rows = 0
        try:
            for scored in score_batches(session, plan, batches, batch_rows):
                if scored.num_rows:
                    writer.write(scored)
                    rows += scored.num_rows
            writer.close(plan.output_schema(schema))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        input_id = local_dataset_id(source, rows)
        output_id = local_dataset_id(target, rows)
        site.record(resolved.ref, input_id, output_id)
    return ScoreResult(
        resolved.ref, rows, time.perf_counter() - started, str(target), input_id, output_id
    )
