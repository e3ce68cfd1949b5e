"""Fixtures of the batch scoring tests: the quickstart's iris model and a CNN registered in
one workspace, and ONE standalone Spark cluster (a master and two workers, started with the
pyspark wheel's ``spark-daemon.sh``) with a session on it, shared by the session's tests.

2 cores: each worker offers 1 core and 1 GiB, executors take 640 MiB, so both workers'
executors (2 tasks at a time) and the driver fit beside the other tests.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import require


@dataclass(frozen=True)
class Models:
    """A workspace home with the iris classifier and the benchmark CNN registered."""

    home: Path
    iris: str  # NAME@production
    cnn: str  # NAME:1


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Train the quickstart's model (2 folds) and register ``benchmarks.models.build_cnn()``."""
    import onnx

    from amlpkg.trainer.quickstart import run_quickstart
    from amlpkg.trainer.registry import register
    from benchmarks.models import build_cnn

    home = tmp_path_factory.mktemp("batch") / "home"
    result = run_quickstart(home, folds=2)
    path = home.parent / "cnn.onnx"
    onnx.save(build_cnn().proto, str(path))
    cnn = register("cnn", path, home=home)
    return Models(home, f"{result.model_version.name}@production", cnn.ref)


def spark_available() -> bool:
    """pyspark installed and a java on PATH."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return shutil.which("java") is not None


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A SparkSession on a fresh standalone cluster of two 1-core workers; all stopped after."""
    require(spark_available(), "pyspark and Java 17 are needed")
    from amlpkg.spark.standalone import StandaloneCluster

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cluster = StandaloneCluster(
        tmp_path_factory.mktemp("spark"), workers=2, worker_cores=1, worker_memory="1g"
    ).start()
    try:
        from pyspark.sql import SparkSession

        # Executors run this interpreter (with amlpkg-batch), not the first python on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master(cluster.master_url)
            .appName("amlpkg-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.executor.memory", "640m")
            .config("spark.driver.memory", "768m")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.task.maxFailures", "1")  # a failing test fails once, not 4 times
            # Small splits: a 20 MB file becomes several tasks, spread over both workers.
            .config("spark.sql.files.maxPartitionBytes", "4m")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()
    finally:
        cluster.stop()
