"""``amlpkg run --target spark://HOST:PORT -- python job.py ARGS``: a PySpark job, tracked.

The runner's child is ``spark-submit --master URL job.py ARGS`` in client mode: the
driver runs here, under spark-submit, with ``AMLPKG_RUN_ID``/``AMLPKG_HOME`` in its
environment, so the script's ``amlpkg.log_*`` land in the run; spark-submit's output
is the run's log and its exit code (the driver's) the run's. Executors start this
interpreter (``PYSPARK_PYTHON``) unless the caller set another. No Spark library is
imported here: spark-submit comes from ``$SPARK_HOME/bin`` or ``PATH`` (the pyspark
wheel puts it there).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.trainer.targets import Launch, RunContext

MASTER_TAG = "target.master"
_PYTHONS = ("python", "python3", Path(sys.executable).name)


def spark_submit() -> str:
    """The spark-submit to use: ``$SPARK_HOME/bin``, then ``PATH``."""
    home = os.environ.get("SPARK_HOME")
    if home and (Path(home) / "bin" / "spark-submit").is_file():
        return str(Path(home) / "bin" / "spark-submit")
    found = shutil.which("spark-submit") or shutil.which(
        "spark-submit", path=str(Path(sys.executable).parent)
    )
    if found is None:
        raise FailedPreconditionError(
            "spark-submit is not installed", hint="pip install pyspark, or set SPARK_HOME"
        )
    return found


def job_argv(command: list[str]) -> list[str]:
    """``job.py ARGS`` from ``python job.py ARGS`` or ``job.py ARGS``."""
    args = command[1:] if command and Path(command[0]).name in _PYTHONS else command
    if not args or not args[0].endswith(".py"):
        raise InvalidArgumentError(
            "a spark target runs a PySpark script",
            hint="amlpkg run --target spark://HOST:7077 -- python job.py [ARGS]",
        )
    return args


@dataclass
class SparkTarget:
    """Submit the command's script to the Spark master ``master`` (``spark://HOST:PORT``)."""

    master: str
    conf: dict[str, str] = field(default_factory=dict)
    name: str = field(default="spark", init=False)

    def prepare(self, run: RunContext, command: list[str]) -> Launch:
        """The ``spark-submit`` command line; the driver gets the run's environment."""
        env = run.env
        argv = [spark_submit(), "--master", self.master, "--deploy-mode", "client"]
        for key, value in sorted(self.conf.items()):
            argv += ["--conf", f"{key}={value}"]
        child_env = {**env, "PYSPARK_PYTHON": env.get("PYSPARK_PYTHON", sys.executable)}
        return Launch(
            argv=[*argv, *job_argv(command)], env=child_env, tags={MASTER_TAG: self.master}
        )
