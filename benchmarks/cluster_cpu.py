"""CPU seconds a Spark job cost, summed over every process of the cluster, read from ``/proc``.

Differences of two snapshots miss work: PySpark's daemon ignores SIGCHLD, so a Python
worker that exits (Spark ends workers idle for a minute) takes its CPU time with it,
and its parent's counters never receive it; a snapshot taken after such an exit even
goes down. So a thread follows every process for the length of the job: each one counts
from its first reading in the window (0 when it started inside the window) to its last.
The thread's own CPU (reading ``/proc``) is taken off this process's share.

Two sums: ``all`` (the master, the workers, the executors and their Python workers, the
driver's JVM and this process) and ``executors`` (the executor JVMs and their Python
workers: the processes that read, score and write rows).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from benchmarks.proc_cpu import all_stats, tree

_WORKER_CLASS = b"org.apache.spark.deploy.worker.Worker"
_TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu_s(pid: int) -> float | None:
    """User + system seconds of ``pid``'s own threads (not its reaped children: they are
    followed themselves, and counting both would count them twice); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None


def _is_worker_jvm(pid: int) -> bool:
    try:
        return _WORKER_CLASS in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class ClusterCpu:
    """``with ClusterCpu(cluster_pids) as cpu: job()``, then ``cpu.all_s``, ``cpu.executors_s``."""

    def __init__(self, roots: list[int], interval_s: float = 0.1, rescan_s: float = 0.5) -> None:
        self.roots = roots
        self.interval_s = interval_s
        self.rescan_s = rescan_s
        self.all_s = 0.0
        self.executors_s = 0.0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._executor_pids: set[int] = set()
        self._own_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-cpu", daemon=True)

    def _scan(self, baseline: bool) -> None:
        stats = all_stats()
        workers = [r for r in self.roots if _is_worker_jvm(r)]
        members: set[int] = set()
        for root in [*self.roots, os.getpid()]:
            members |= tree(root, stats)
        for worker in workers:
            self._executor_pids |= tree(worker, stats) - {worker}
        for pid in members - set(self._first):
            now = own_cpu_s(pid)
            if now is not None:
                # Present at the start: counts from now; born inside the window: from 0.
                self._first[pid] = now if baseline else 0.0
                self._last[pid] = now

    def _read(self) -> None:
        for pid in self._first:
            now = own_cpu_s(pid)
            if now is not None:  # an exited process keeps its last reading
                self._last[pid] = now

    def _run(self) -> None:
        started = time.thread_time()
        scanned = time.monotonic()
        while not self._stop.wait(self.interval_s):
            if time.monotonic() - scanned >= self.rescan_s:
                self._scan(baseline=False)
                scanned = time.monotonic()
            self._read()
        self._scan(baseline=False)
        self._read()
        self._own_s = time.thread_time() - started

    def __enter__(self) -> ClusterCpu:
        self._scan(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        spent = {pid: self._last[pid] - self._first[pid] for pid in self._first}
        self.all_s = sum(spent.values()) - self._own_s
        self.executors_s = sum(s for pid, s in spent.items() if pid in self._executor_pids)
