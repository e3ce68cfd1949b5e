"""``pid_alive`` on real processes: running, exited and reaped, exited and not reaped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from amlpkg.processes import pid_alive


def test_a_running_process_is_alive_and_a_reaped_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid) and pid_alive(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)
    assert not pid_alive(0) and not pid_alive(-1)


def test_an_exited_child_not_yet_reaped_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    # Not waited for: it stays a zombie, which os.kill alone would call alive.
    while pid_alive(child.pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(child.pid, 0)  # the zombie is still there
    child.wait()
