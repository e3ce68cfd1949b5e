"""A team's store under concurrent writers: PostgreSQL + S3 with real processes.

Processes get the store through the environment (``AMLPKG_STORE``,
``AMLPKG_ARTIFACTS``, ``AMLPKG_S3_ENDPOINT_URL``, the AWS keys), as a team's
training scripts and server replicas do.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amlpkg.store.workspace import open_workspace
from tests.services import free_port
from tests.store.conftest import TeamStore
from tests.team_server import wait_healthy
from tests.trainer.conftest import make_onnx

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "amlpkg")


def _env(team: TeamStore, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AMLPKG_HOME": str(home),
        "AMLPKG_STORE": team.store,
        "AMLPKG_ARTIFACTS": team.artifacts,
    }


def _python(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_all(procs: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def test_eight_processes_registering_one_model_get_eight_consecutive_versions(
    team_store: TeamStore, tmp_path: Path
) -> None:
    with open_workspace(tmp_path / "ws", store=team_store.store, artifacts=team_store.artifacts):
        pass  # migrate once up front, so the race is about versions only
    models = [make_onnx(tmp_path / f"m{i}.onnx", n_features=i + 1) for i in range(8)]
    start = time.time() + 3  # every process waits for one moment, then registers
    code = (
        "import sys, time\n"
        "from amlpkg.trainer.registry import register\n"
        f"time.sleep(max(0, {start} - time.time()))\n"
        "print(register('shared', sys.argv[1]).version)\n"
    )
    env = _env(team_store, tmp_path / "proc")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(m)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for m in models
    ]  # fmt: skip
    versions = sorted(int(out) for out in _wait_all(procs))
    assert versions == list(range(1, 9))
    with open_workspace(
        tmp_path / "ws", store=team_store.store, artifacts=team_store.artifacts
    ) as ws:
        rows = ws.conn.execute(
            "SELECT version, sha256 FROM model_versions WHERE name = 'shared' ORDER BY version"
        ).fetchall()
        assert [r[0] for r in rows] == versions
        # Each version holds its own file, and the bucket has every one of them, verified.
        expected = {hashlib.sha256(m.read_bytes()).hexdigest() for m in models}
        assert {r[1] for r in rows} == expected
        for _, digest in rows:
            assert ws.artifacts.verified_path(digest).is_file()


def test_a_client_killed_mid_upload_leaves_no_partial_version(
    team_store: TeamStore, tmp_path: Path
) -> None:
    big = make_onnx(tmp_path / "big.onnx", weight_bytes=96 * 1024 * 1024)
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    with open_workspace(
        tmp_path / "ws", store=team_store.store, artifacts=team_store.artifacts
    ) as ws:
        store = ws.artifacts
        bucket, prefix = store.bucket, store.prefix  # type: ignore[attr-defined]
        client = store.client  # type: ignore[attr-defined]
        proc = _python(
            f"from amlpkg.trainer.registry import register; register('big', {str(big)!r})",
            _env(team_store, tmp_path / "proc"),
        )
        try:
            deadline = time.monotonic() + 120
            # Kill once the multipart upload to the bucket is under way.
            while not client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads"):
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the upload never started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.communicate(timeout=30)  # reaps it and closes its pipes
        assert proc.returncode == -signal.SIGKILL
        assert ws.conn.execute("SELECT COUNT(*) FROM model_versions").scalar() == 0
        assert ws.conn.execute("SELECT COUNT(*) FROM models").scalar() == 0
        # Nothing half-written is visible under the digest key.
        assert not store.exists(digest)
        # The leftovers are cleaned up, and registering again works from scratch.
        store.remove_stale_temp_files()  # type: ignore[attr-defined]
        assert not client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")
        from amlpkg.trainer.registry import register

        assert register("big", big, workspace=ws).version == 1
        assert store.exists(digest)


def test_sixteen_training_scripts_logging_metrics_lose_none(
    team_store: TeamStore, tmp_path: Path
) -> None:
    steps = 60
    code = (
        "import amlpkg\n"
        "run = amlpkg.start_run('crowd')\n"
        f"for step in range({steps}):\n"
        "    amlpkg.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "    amlpkg.log_metrics({'a': step, 'b': -step}, step=step)\n"
        "amlpkg.end_run()\n"
        "print(run.id)\n"
    )
    procs = [_python(code, _env(team_store, tmp_path / f"p{i}")) for i in range(16)]
    run_ids = [out.strip() for out in _wait_all(procs)]
    assert len(set(run_ids)) == 16
    with open_workspace(
        tmp_path / "ws", store=team_store.store, artifacts=team_store.artifacts
    ) as ws:
        counts = dict(
            ws.conn.execute("SELECT run_id, COUNT(*) FROM metrics GROUP BY run_id").fetchall()
        )
        assert counts == {run: 3 * steps for run in run_ids}
        statuses = {r[0] for r in ws.conn.execute("SELECT status FROM runs").fetchall()}
        assert statuses == {"completed"}


@pytest.fixture
def replicas(team_store: TeamStore, tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """Two `amlpkg server` processes on one PostgreSQL database and bucket, and a token."""
    env = _env(team_store, tmp_path / "cli")
    made = subprocess.run(
        [CLI, "server", "--store", team_store.store, "--artifacts", team_store.artifacts,
         "token", "create", "--role", "contributor", "--name", "ci", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    logs = [(tmp_path / f"server{i}.log").open("w") for i in range(2)]
    try:
        for i, log in enumerate(logs):
            port = free_port()
            # Each replica has its own local folder: nothing is shared but the two services.
            servers.append(
                subprocess.Popen(
                    [CLI, "server", "--port", str(port)],
                    env={**env, "AMLPKG_HOME": str(tmp_path / f"replica{i}")},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for i, url in enumerate(urls):
            log_path = tmp_path / f"server{i}.log"
            wait_healthy(url, servers[i], log_path, timeout_s=90, what="a replica")
        yield urls, token
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)
        for log in logs:
            log.close()


def test_two_server_replicas_serve_one_workspace(
    replicas: tuple[list[str], str], tmp_path: Path
) -> None:
    (one, two), token = replicas
    auth = {"Authorization": f"Bearer {token}"}
    model = make_onnx(tmp_path / "m.onnx").read_bytes()
    digest = hashlib.sha256(model).hexdigest()
    with (
        httpx.Client(base_url=f"{one}/api/v1", headers=auth, timeout=60) as first,
        httpx.Client(base_url=f"{two}/api/v1", headers=auth, timeout=60) as second,
    ):
        run_id = first.post("/runs", json={"experiment": "team"}).json()["id"]
        logged = first.post(
            f"/runs/{run_id}/log-batch", json={"metrics": [{"key": "acc", "value": 0.75}]}
        )
        assert logged.status_code < 300, logged.text
        put = first.put(
            f"/runs/{run_id}/artifacts/m.onnx", params={"sha256": digest}, content=model
        )
        assert put.status_code == 201, put.text
        # The other replica sees the run and registers its artifact, read from the bucket.
        run = second.get(f"/runs/{run_id}")
        assert run.status_code == 200 and run.json()["metrics"] == {"acc": 0.75}, run.text
        made = second.post("/models/team/versions", json={"source": f"runs:/{run_id}/m.onnx"})
        assert made.status_code == 201, made.text
        assert made.json()["sha256"] == digest
        shown = first.get("/models/team/versions/1")
        assert shown.status_code == 200 and shown.json()["run_id"] == run_id, shown.text
