"""A throwaway Spark standalone cluster (a master and N workers) from the pyspark wheel.

The wheel ships ``sbin/spark-daemon.sh`` but no ``start-master.sh``/``start-worker.sh``;
the daemon script starts the same classes. Logs, pid files and executors' work folders
go under one folder of ours (by default they land inside the venv). Used by the tests,
the benchmark and anyone who wants a cluster on one machine to try ``--engine spark``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from amlpkg.errors import FailedPreconditionError, UnavailableError
from amlpkg.processes import pid_alive

_MASTER = "org.apache.spark.deploy.master.Master"
_WORKER = "org.apache.spark.deploy.worker.Worker"
_SCRIPT_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark wheel."""
    try:
        import pyspark
    except ImportError as exc:
        raise FailedPreconditionError(
            "pyspark is not installed", hint="pip install 'amlpkg-batch[spark]'"
        ) from exc
    return Path(pyspark.__file__).parent


@dataclass
class StandaloneCluster:
    """``with StandaloneCluster(folder, workers=2) as cluster: ... cluster.master_url``."""

    folder: Path
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "1g"
    master_port: int = field(default_factory=_free_port)
    ui_port: int = field(default_factory=_free_port)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:PORT``."""
        return f"spark://127.0.0.1:{self.master_port}"

    def _env(self) -> dict[str, str]:
        home = spark_home()
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.folder / "logs"),
            "SPARK_PID_DIR": str(self.folder / "pids"),
            "SPARK_WORKER_DIR": str(self.folder / "work"),
            "SPARK_IDENT_STRING": "amlpkg",
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            **self.env,
        }

    def _daemon(self, *args: str) -> None:
        script = spark_home() / "sbin" / "spark-daemon.sh"
        done = subprocess.run(  # noqa: S603 - fixed script, argv list
            ["bash", str(script), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=_SCRIPT_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise UnavailableError(
                f"spark-daemon.sh {args[0]} {args[1].rsplit('.', 1)[-1]} failed:"
                f" {(done.stdout + done.stderr).strip()[-500:]}",
                hint=f"see the logs in {self.folder / 'logs'}",
            )

    def alive_workers(self) -> int:
        """How many workers the master lists as alive (0 when it does not answer)."""
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(json.loads(response.read(1_000_000)).get("aliveworkers", 0))
        except (OSError, ValueError):
            return 0

    def start(self, timeout_s: float = 90.0) -> StandaloneCluster:
        """Start the master and the workers; wait until every worker registered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._daemon(
            "start", _MASTER, "1", "--host", "127.0.0.1", "--port", str(self.master_port),
            "--webui-port", str(self.ui_port),
        )  # fmt: skip
        for n in range(1, self.workers + 1):
            self._daemon(
                "start", _WORKER, str(n), "--host", "127.0.0.1",
                "--webui-port", str(_free_port()), "--cores", str(self.worker_cores),
                "--memory", self.worker_memory, self.master_url,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while self.alive_workers() < self.workers:
            if time.monotonic() > deadline:
                self.stop()
                raise UnavailableError(
                    f"the Spark cluster did not come up with {self.workers} workers"
                    f" in {timeout_s:.0f} s",
                    hint=f"see the logs in {self.folder / 'logs'}",
                )
            time.sleep(0.3)
        return self

    def pids(self) -> list[int]:
        """The master's and workers' JVM process ids (from their pid files)."""
        pids = []
        for path in sorted((self.folder / "pids").glob("*.pid")):
            try:
                pids.append(int(path.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the workers and the master, and wait until their JVMs are gone."""
        pids = self.pids()
        for n in range(self.workers, 0, -1):
            self._daemon("stop", _WORKER, str(n))
        self._daemon("stop", _MASTER, "1")
        # spark-daemon.sh returns at once; the JVMs exit a few seconds later.
        deadline = time.monotonic() + timeout_s
        for pid in pids:
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
