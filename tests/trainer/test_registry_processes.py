"""The registry across processes: concurrent registrations and SIGKILL mid-registration."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amlpkg.store.artifacts import TEMP_PREFIX
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.integrity import check_integrity
from amlpkg.trainer.registry import list_versions, register
from tests.trainer.conftest import make_onnx

pytestmark = pytest.mark.slow


def _register_many(home: str, path: str, count: int, queue: multiprocessing.Queue) -> None:
    versions = [register("shared", path, home=home).version for _ in range(count)]
    queue.put(versions)


def test_concurrent_processes_get_unique_consecutive_versions(home: Path, tmp_path: Path) -> None:
    model = make_onnx(tmp_path / "m.onnx")
    open_workspace(home).close()  # migrate once up front
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    workers, per_worker = 4, 5
    procs = [
        ctx.Process(target=_register_many, args=(str(home), str(model), per_worker, queue))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    got = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    every = sorted(v for versions in got for v in versions)
    assert every == list(range(1, workers * per_worker + 1))
    for versions in got:
        assert versions == sorted(versions)  # each process sees its own versions grow
    assert len(list_versions("shared", home=home)) == workers * per_worker


_LOOP = """
import sys
from amlpkg.trainer.registry import register
from tests.trainer.conftest import make_onnx
from pathlib import Path
home, folder = sys.argv[1], Path(sys.argv[2])
i = 0
while True:
    # A fresh large model each time, so the artifact write itself takes a while.
    path = make_onnx(folder / f"m{i % 2}.onnx", weight_bytes=8 * 1024 * 1024)
    register("big", path, home=home)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_during_registration_leaves_no_partial_version(home: Path, tmp_path: Path) -> None:
    open_workspace(home).close()
    script = tmp_path / "loop.py"
    script.write_text(_LOOP)
    # Spread over the loop (after the imports), so kills land in different phases.
    delays = [0.05, 0.9, 1.15, 1.4, 1.65, 1.9, 2.2]
    root = Path(__file__).resolve().parents[2]
    for delay in delays:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(home), str(tmp_path)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    with open_workspace(home) as ws:
        assert check_integrity(ws) == []
        rows = ws.conn.execute(
            "SELECT version FROM model_versions WHERE name = 'big' ORDER BY version"
        ).fetchall()
        versions = [r[0] for r in rows]
        assert versions, "the loop never registered: the kills came too early"
        assert versions == list(range(1, len(versions) + 1))
        stored = set(ws.artifacts.iter_digests())
        assert all(not d.startswith(TEMP_PREFIX) for d in stored)
        for (digest,) in ws.conn.execute("SELECT sha256 FROM model_versions"):
            assert digest in stored
        ws.artifacts.remove_stale_temp_files()
        # The registry still works after the crashes.
        assert register("big", make_onnx(tmp_path / "after.onnx"), workspace=ws).version == (
            len(versions) + 1
        )
