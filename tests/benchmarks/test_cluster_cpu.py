"""A Spark job's CPU summed over the cluster's processes: exited workers count, once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.cluster_cpu import ClusterCpu, own_cpu_s

BURN_S = 0.8
# Stands in for a Spark worker JVM (the sampler knows one by this class name on its command
# line): waits for a line on stdin, then runs a child that burns BURN_S of CPU and exits.
WORKER = """
import signal, subprocess, sys
if sys.argv[1] == "ignore":  # as PySpark's daemon does: exited children leave no trace
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
sys.stdin.readline()
burn = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < %s: pass"
subprocess.Popen([sys.executable, "-c", burn]).wait()
"""


@pytest.mark.parametrize("children", ["ignore", "reap"])
def test_a_child_that_exits_inside_the_window_counts_once(children: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER % BURN_S, children, "org.apache.spark.deploy.worker.Worker"],
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        with ClusterCpu([worker.pid], interval_s=0.05, rescan_s=0.05) as cpu:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.close()
            worker.wait(timeout=60)
    finally:
        worker.kill()
    # The child's own CPU, though it exited (and, when reaped, also sits in the parent's
    # counters of reaped children, which are not added a second time).
    assert BURN_S - 0.1 <= cpu.executors_s <= BURN_S + 0.3
    assert cpu.all_s >= cpu.executors_s - 0.05


def test_own_cpu_is_none_for_a_process_that_is_gone() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert own_cpu_s(done.pid) is None
    assert (own_cpu_s(os.getpid()) or 0.0) > 0.0
