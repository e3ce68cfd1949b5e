"""Server and client CPU from /proc: parsing, the process tree, the measured window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.proc_cpu import CpuSampler, ProcStat, Sample, parse_stat, tree, window_cores

# A real line's shape; the name holds a space and a ')' as names may.
STAT = (
    "4242 (tritonserver) x) S 4200 4242 4242 0 -1 4194560 100 0 0 0 "
    "250 150 30 20 20 0 9 0 1000 100000 500 18446744073709551615"
)


def test_parse_stat_reads_ppid_session_and_cpu() -> None:
    stat = parse_stat(4242, STAT)
    assert (stat.ppid, stat.session) == (4200, 4242)
    ticks = 250 + 150 + 30 + 20
    assert stat.cpu_s == pytest.approx(ticks / 100, rel=0.5)  # CLK_TCK is 100 on Linux


def test_tree_has_descendants_and_session_members_only() -> None:
    stats = [
        ProcStat(10, 1, 10, 0.0),  # the server (its own session)
        ProcStat(11, 10, 10, 0.0),  # a child
        ProcStat(12, 11, 10, 0.0),  # a grandchild
        ProcStat(13, 1, 10, 0.0),  # re-parented to init, still in the session
        ProcStat(14, 13, 99, 0.0),  # a child of that one in its own session
        ProcStat(20, 1, 20, 0.0),  # the client: another session
    ]
    assert tree(10, stats) == {10, 11, 12, 13, 14}


def test_window_skips_start_up_and_divides_by_wall_time() -> None:
    samples = [Sample(t, server_s=2.0 * t * (t >= 1), client_s=0.5 * t) for t in range(11)]
    server, client = window_cores(samples)  # from t=1 (the 1 s skip) to t=10
    assert server == pytest.approx(2.0) and client == pytest.approx(0.5)
    short = [Sample(0.0, 0.0, 0.0), Sample(0.4, 0.4, 0.1)]
    assert window_cores(short) == (pytest.approx(1.0), pytest.approx(0.25))
    assert window_cores(short[:1]) == (None, None)


def test_sampler_measures_a_busy_child_tree() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}], timeout=30)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        with CpuSampler(proc.pid, interval_s=0.1, rescan_s=0.1) as sampler:
            time.sleep(1.0)
        server, client = sampler.cores()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the grandchild too
        proc.wait(timeout=10)
    assert server is not None and server > 0  # the grandchild's CPU counts
    assert client == 0.0
