"""Score Spark DataFrames with a registered ONNX model: ``amlpkg.spark.score(df, "iris@prod")``.

The driver resolves the model in the workspace, checks the DataFrame's columns against
the model's signature (so a wrong mapping fails here, not in an executor), broadcasts
the model's bytes and returns ``df.mapInArrow(...)``: each executor Python worker makes
one ONNX Runtime session per model digest, on first use, from the broadcast bytes it
verified, and reuses it for every later batch and task (Spark reuses Python workers),
with as many intra-op threads as the task has cores (``spark.task.cpus``).
Executors need this distribution installed (``amlpkg-batch``) in ``PYSPARK_PYTHON``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from amlpkg.batch.kernel import score_batches, session_for
from amlpkg.batch.lineage import dataset_id
from amlpkg.batch.model import ResolvedModel
from amlpkg.batch.plan import InputsSpec, OutputsSpec, ScorePlan
from amlpkg.batch.sites import scoring_site
from amlpkg.errors import InvalidArgumentError
from amlpkg.spark.session import settle_worker, task_cores

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["score", "score_resolved"]

DEFAULT_BATCH_ROWS = 10_000  # Spark's own default Arrow batch (maxRecordsPerBatch)


def _scorer(
    plan: ScorePlan, model: Any, batch_rows: int
) -> Any:  # a closure Spark pickles to the executors
    digest = plan.digest

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # `model.value` is read (from the executor's broadcast block) only on a cache miss.
        session = session_for(digest, lambda: model.value, threads=task_cores())
        settle_worker()
        yield from score_batches(session, plan, batches, batch_rows)

    return score_partition


def _local_path(uri: str) -> str | None:
    for prefix in ("file://", "file:"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri if uri.startswith("/") else None


def _input_location(df: DataFrame) -> tuple[str, list[Path]]:
    """Where the DataFrame's rows come from, and its files when they are all local."""
    try:
        uris = sorted(df.inputFiles())
    except Exception:  # not every plan can list its files; then it has none
        uris = []
    if not uris:
        return "spark-dataframe", []
    local = [p for p in map(_local_path, uris) if p is not None]
    names = local if len(local) == len(uris) else uris
    parents = {n.rsplit("/", 1)[0] for n in names}
    location = names[0] if len(names) == 1 or len(parents) != 1 else parents.pop()
    return location, [Path(p) for p in local] if len(local) == len(uris) else []


def score(
    df: DataFrame,
    model: str,
    *,
    inputs: InputsSpec = None,
    outputs: OutputsSpec = None,
    keep: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    record_lineage: bool = True,
    home: str | Path | None = None,
) -> DataFrame:
    """``df`` with the outputs of ``model`` (``NAME``, ``NAME:V``, ``NAME@ALIAS``) appended.

    ``inputs``: model input -> a column (an array column, reshaped per row) or a list of
    feature columns; a plain list when the model has one input; None: the column named
    like the input, or every numeric column when their count fits. ``outputs``: the
    outputs to append (a list) or output -> column name; None: all, named as in the model.
    ``keep``: the columns of ``df`` to pass through (e.g. an id; None: all): leaving out
    a large image column saves moving it back from Python to the JVM.
    Lineage records that this version scored the DataFrame's input (path and sha256 of
    local files, else its row count, which costs a ``count()``).
    """
    if batch_rows < 1:
        raise InvalidArgumentError("batch_rows must be at least 1")
    with scoring_site(home) as site:
        resolved = site.resolve(model)
        scored = score_resolved(
            df, resolved, inputs=inputs, outputs=outputs, keep=keep, batch_rows=batch_rows
        )
        if record_lineage:
            location, files = _input_location(df)
            rows = None if files else df.count()
            site.record(resolved.ref, dataset_id(location, files, rows), None)
    return scored


def score_resolved(
    df: DataFrame,
    resolved: ResolvedModel,
    *,
    inputs: InputsSpec = None,
    outputs: OutputsSpec = None,
    keep: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> DataFrame:
    """Like :func:`score` with a model already resolved, recording no lineage."""
    from pyspark.sql.pandas.types import from_arrow_type, to_arrow_schema
    from pyspark.sql.types import StructField, StructType

    plan = resolved.plan(to_arrow_schema(df.schema), inputs, outputs, keep)
    appended = [StructField(f.name, from_arrow_type(f.type), True) for f in plan.output_fields()]
    kept = [df.schema[n] for n in plan.kept_names(to_arrow_schema(df.schema))]
    schema = StructType([*kept, *appended])
    broadcast = df.sparkSession.sparkContext.broadcast(resolved.data)
    return df.mapInArrow(_scorer(plan, broadcast, batch_rows), schema)
