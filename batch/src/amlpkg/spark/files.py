"""``amlpkg score --engine spark``: a Parquet/CSV dataset in, a Parquet folder out, on Spark."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from amlpkg.batch.lineage import dataset_id, local_dataset_id
from amlpkg.batch.local import ScoreResult, file_format
from amlpkg.batch.model import ResolvedModel
from amlpkg.batch.plan import InputsSpec, OutputsSpec
from amlpkg.batch.sites import scoring_site
from amlpkg.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from amlpkg.spark import score_resolved
from amlpkg.spark.direct import score_parquet_files
from amlpkg.spark.session import call_spark, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _local(path: str) -> Path | None:
    if "://" in path and not path.startswith("file://"):
        return None
    return Path(path.removeprefix("file://"))


def _score_dataframe(
    spark: SparkSession,
    resolved: ResolvedModel,
    input_path: str,
    output_path: str,
    fmt: str,
    *,
    inputs: InputsSpec,
    outputs: OutputsSpec,
    keep: Sequence[str] | None,
    batch_rows: int,
    overwrite: bool,
) -> int:
    """Spark reads ``input_path`` (any format, any filesystem it knows) and writes Parquet."""
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
    reader = spark.read.option("header", "true").option("inferSchema", "true")
    df = call_spark(lambda: reader.format(fmt).load(input_path), f"read {input_path}")
    scored = score_resolved(
        df, resolved, inputs=inputs, outputs=outputs, keep=keep, batch_rows=batch_rows
    )
    writer = scored.write.mode("overwrite" if overwrite else "errorifexists")
    call_spark(lambda: writer.parquet(output_path), f"score {input_path}")
    return int(call_spark(lambda: spark.read.parquet(output_path).count(), "count the rows"))


def score_on_spark(
    master: str,
    model: str,
    input_path: str,
    output_path: str,
    *,
    inputs: InputsSpec = None,
    outputs: OutputsSpec = None,
    keep: Sequence[str] | None = None,
    batch_rows: int = 10_000,
    input_format: str | None = None,
    overwrite: bool = False,
    home: str | Path | None = None,
) -> ScoreResult:
    """Score the dataset at ``input_path`` on ``master`` into a Parquet folder ``output_path``.

    Paths are as Spark reads them (local paths must be reachable by every executor).
    ``batch_rows`` is ONNX Runtime's batch (and Spark's Arrow batch). Parquet from and to
    local paths is read and written by the executors themselves
    (:mod:`amlpkg.spark.direct`); other formats and filesystems go through a DataFrame.
    """
    source, target = _local(input_path), _local(output_path)
    if source is not None and not source.exists():
        raise NotFoundError(f"input {source} does not exist", hint="check the path")
    fmt = input_format or (file_format(source) if source is not None else "parquet")
    if target is not None and target.suffix == ".csv":
        raise InvalidArgumentError(
            "the Spark engine writes Parquet folders", hint="name the output without .csv"
        )
    if target is not None and target.exists() and not overwrite:
        raise AlreadyExistsError(f"output {target} exists", hint="remove it or pass --overwrite")
    started = time.perf_counter()
    spark = spark_session(master)
    try:
        with scoring_site(home) as site:
            resolved = site.resolve(model)
            if fmt == "parquet" and source is not None and target is not None:
                # Executors read and write the files: no row crosses Spark's row path.
                rows = score_parquet_files(
                    spark, resolved, source, target, inputs=inputs, outputs=outputs, keep=keep,
                    batch_rows=batch_rows, overwrite=overwrite,
                )  # fmt: skip
            else:
                rows = _score_dataframe(
                    spark, resolved, input_path, output_path, fmt, inputs=inputs,
                    outputs=outputs, keep=keep, batch_rows=batch_rows, overwrite=overwrite,
                )  # fmt: skip
            input_id = (
                local_dataset_id(source, rows) if source else dataset_id(input_path, rows=rows)
            )
            output_id = (
                local_dataset_id(target, rows) if target else dataset_id(output_path, rows=rows)
            )
            site.record(resolved.ref, input_id, output_id)
    finally:
        spark.stop()
    return ScoreResult(
        resolved.ref, rows, time.perf_counter() - started, output_path, input_id, output_id
    )
