"""`amlpkg run --target spark://...`: a PySpark script submitted with spark-submit, tracked.

Its own one-worker cluster: the shared cluster's cores stay with the session of the
scoring tests, and a second application would wait for them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.batch.conftest import spark_available
from tests.services import require

pytestmark = pytest.mark.slow

JOB = """\
import sys
from pyspark.sql import SparkSession
import amlpkg
spark = SparkSession.builder.appName("amlpkg-target-test").getOrCreate()
n = int(sys.argv[1])
amlpkg.log_param("n", n)
total = spark.range(n).selectExpr("sum(id * 2) AS s").first()["s"]
amlpkg.log_metric("total", total)
print("total", total)
spark.stop()
sys.exit(0 if total == n * (n - 1) else 5)
"""


def test_a_pyspark_script_submitted_to_the_cluster_is_a_tracked_run(tmp_path: Path) -> None:
    require(spark_available(), "pyspark and Java 17 are needed")
    from amlpkg.spark.standalone import StandaloneCluster
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.store import queries

    (tmp_path / "job.py").write_text(JOB)
    cli = str(Path(sys.executable).parent / "amlpkg")
    with StandaloneCluster(tmp_path / "spark", workers=1, worker_memory="1g") as cluster:
        done = subprocess.run(
            [cli, "run", "--home", str(tmp_path / "home"), "--target", cluster.master_url,
             "--", "python", "job.py", "1000"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open_workspace(tmp_path / "home") as ws:
        (run,) = queries.list_runs(ws)
    assert run.status == "completed" and run.exit_code == 0
    assert run.params == {"n": "1000"} and run.metrics == {"total": 999_000.0}
    assert run.tags["target"] == "spark" and run.tags["target.master"] == cluster.master_url
