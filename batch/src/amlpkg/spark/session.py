"""A SparkSession for amlpkg's commands, and Spark's errors in amlpkg's words."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from amlpkg.errors import AmlpkgError, FailedPreconditionError, InternalError, UnavailableError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = TypeVar("T")
_MAX_MESSAGE = 2000
_SETTLED: list[bool] = []  # non-empty once this Python worker froze what it holds
# pyarrow's default pool, set for the executors so that a cluster's environment cannot
# change it. With Parquet read without pre-buffering (amlpkg.batch.parquet_in), mimalloc
# hands freed blocks back batch after batch at any row-group size; pyarrow's jemalloc
# returned the pages of large blocks to the kernel whatever its decay settings (row
# groups of 96 MiB: 20 page faults a row, 0.68x in-process ONNX Runtime against 0.87x).
ARROW_POOL = "mimalloc"


def spark_session(master: str, app_name: str = "amlpkg-score") -> SparkSession:
    """A session on ``master`` (``local[N]``, ``spark://HOST:PORT``) running our Python.

    Executors start ``PYSPARK_PYTHON``; it defaults to this interpreter, so the
    executors import the same amlpkg, ONNX Runtime and pyarrow as the driver. Their
    pyarrow allocates from :data:`ARROW_POOL`, like the local engine's by default,
    unless ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise here.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise FailedPreconditionError(
            "pyspark is not installed", hint="pip install 'amlpkg-batch[spark]'"
        ) from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    pool = os.environ.get("ARROW_DEFAULT_MEMORY_POOL", ARROW_POOL)
    return call_spark(
        lambda: (
            SparkSession.builder.master(master)
            .appName(app_name)
            .config("spark.ui.enabled", "false")
            .config("spark.executorEnv.ARROW_DEFAULT_MEMORY_POOL", pool)
            .getOrCreate()
        ),
        f"start a Spark session on {master}",
    )


def task_cores() -> int:
    """The cores Spark gave the running task (``spark.task.cpus``); 1 outside a task.

    ONNX Runtime's intra-op threads: more would contend with the executor's other tasks.
    """
    from pyspark import TaskContext

    context = TaskContext.get()
    return max(1, int(context.cpus())) if context is not None else 1


def settle_worker() -> None:
    """Leave what this Python worker has imported and built out of later garbage collections.

    PySpark's daemon runs a full ``gc.collect()`` in a reused Python worker after every
    task; with ONNX Runtime, pyarrow and amlpkg imported (about 100,000 objects) each one
    took 25-35 ms, about 5% of the workers' samples on the benchmark's CNN tasks. Done
    once per worker, after its session is made: one collection first, so that no garbage
    is kept, then ``gc.freeze()``; objects made later are collected as before.
    """
    if not _SETTLED:
        gc.collect()
        gc.freeze()
        _SETTLED.append(True)


def _first_lines(exc: BaseException) -> str:
    text = str(exc).strip()
    # Executors' Python errors arrive wrapped in a JVM stack trace: keep amlpkg's line.
    for line in text.splitlines():
        if "amlpkg.errors." in line:
            return line.split("amlpkg.errors.", 1)[1][:_MAX_MESSAGE]
    return "\n".join(text.splitlines()[:3])[:_MAX_MESSAGE]


def call_spark(action: Callable[[], T], doing: str) -> T:
    """Run ``action``; Spark, py4j and JVM failures become amlpkg errors saying what failed."""
    try:
        return action()
    except AmlpkgError:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if "Py4J" in name or "JavaGateway" in str(exc) or isinstance(exc, ConnectionError):
            raise UnavailableError(
                f"could not {doing}: {_first_lines(exc)}",
                hint="check that Java 17 is installed and the Spark master URL answers",
            ) from exc
        raise InternalError(
            f"Spark failed to {doing}: {_first_lines(exc)}",
            hint="the executors' logs (the worker's work folder) say more",
        ) from exc
