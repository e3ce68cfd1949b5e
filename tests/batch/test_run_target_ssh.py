"""`amlpkg run --target ssh://USER@HOST:PORT`: a run on a remote Docker engine, recorded on a
team server, and `amlpkg runs reproduce` of it.

All real: an OpenSSH server on a free port (keys made here), through which the docker SDK
reaches this machine's engine (``docker system dial-stdio``), so the image build, the code
copy and the container all go through ssh; a real `amlpkg server` process listening on the
Docker bridge's gateway address, the address a container reaches its host at (a loopback
URL is refused, see the last test). Nothing is mounted into the container.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from tests.services import docker_available, free_port, require, sshd_server
from tests.team_server import wait_healthy

CLI = str(Path(sys.executable).parent / "amlpkg")
SCRIPT = """\
import random, sys
import six  # from requirements.txt: installed into the image offline
import amlpkg
from helper import GREETING  # the code folder is copied, not only the script
rng = random.Random(int(sys.argv[1]))
amlpkg.log_param("seed", sys.argv[1])
amlpkg.log_metric("score", sum(rng.random() for _ in range(1000)))
print(GREETING, "six", six.__version__)
"""


def _amlpkg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )


def _gateway() -> str:
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format",
         "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    require(done.returncode == 0 and done.stdout.strip(), "Docker's bridge network is needed")
    return done.stdout.strip()


@pytest.fixture
def docker_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``ssh://USER@127.0.0.1:PORT`` of a real sshd in front of this machine's engine."""
    require(docker_available(), "a Docker engine is needed")
    with sshd_server(tmp_path / "ssh") as (port, home):
        monkeypatch.setenv("HOME", str(home))
        yield f"ssh://{getpass.getuser()}@127.0.0.1:{port}"


@contextlib.contextmanager
def _team_server(
    folder: Path, host: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    """A real `amlpkg server` on ``host``; its URL and a contributor token in the env."""
    store = folder / "team"
    made = subprocess.run(
        [CLI, "server", "--store", str(store), "token", "create", "--role", "contributor",
         "--name", "ci", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = json.loads(made.stdout)["token"]
    port = str(free_port())
    url = f"http://{host}:{port}"
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [CLI, "server", "--store", f"sqlite:///{store}/amlpkg.db", "--host", host, "--port", port],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(url, server, folder / "server.log")
        for name in ("AMLPKG_HOME", "AMLPKG_STORE", "AMLPKG_ARTIFACTS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AMLPKG_TRACKING_URI", url)
        monkeypatch.setenv("AMLPKG_TRACKING_TOKEN", token)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=30) as client:
            yield client
    finally:
        server.terminate()
        server.wait(20)
        log.close()


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """A team server on the Docker bridge's gateway, which containers reach."""
    with _team_server(tmp_path, _gateway(), monkeypatch) as client:
        yield client


def _containers() -> list[str]:
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", "name=amlpkg-run-"],
                            capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return listed.stdout.split()


@pytest.mark.slow
def test_a_run_on_a_remote_engine_is_recorded_on_the_team_server_and_reproduces(
    tmp_path: Path, docker_host: str, team: httpx.Client
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(SCRIPT)
    (code / "helper.py").write_text("GREETING = 'hello from the copied code'\n")
    (code / "requirements.txt").write_text("six==1.16.0\n")
    before = set(_containers())

    first = _amlpkg("run", "--target", docker_host, "--", "python", "train.py", "7", cwd=code)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "hello from the copied code six 1.16.0" in first.stdout
    (run,) = team.get("/runs").json()
    assert run["status"] == "completed" and run["params"] == {"seed": "7"}
    assert set(run["metrics"]) == {"score"}
    tags = run["tags"]
    assert tags["target"] == "ssh" and tags["target.docker_host"] == docker_host
    assert tags["target.image_id"].startswith("sha256:")
    assert tags["target.command"] == "python train.py 7"
    artifacts = {a["path"] for a in team.get(f"/runs/{run['id']}/artifacts").json()}
    assert {"logs/output.log", "environment/target-requirements.txt"} <= artifacts

    again = _amlpkg("runs", "reproduce", run["id"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    copy = next(r for r in team.get("/runs").json() if r["id"] != run["id"])
    assert copy["tags"]["reproduces"] == run["id"]
    assert copy["tags"]["target.image_id"] == tags["target.image_id"]
    assert copy["tags"]["target.docker_host"] == docker_host
    assert copy["metrics"] == run["metrics"] and copy["params"] == run["params"]

    (code / "fail.py").write_text("import sys; print('bye'); sys.exit(3)\n")
    failed = _amlpkg("run", "--target", docker_host, "--", "python", "fail.py", cwd=code)
    assert failed.returncode == 3 and "bye" in failed.stdout
    assert {r["status"] for r in team.get("/runs").json()} == {"completed", "failed"}
    assert set(_containers()) == before  # every run's container was removed


@pytest.mark.slow
def test_a_local_docker_run_records_on_a_team_server_on_this_machines_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--target docker` with a server at 127.0.0.1: the container shares the host's network."""
    require(docker_available(), "a Docker engine is needed")
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(SCRIPT)
    (code / "helper.py").write_text("GREETING = 'hello from the mounted code'\n")
    (code / "requirements.txt").write_text("six==1.16.0\n")
    with _team_server(tmp_path, "127.0.0.1", monkeypatch) as team:
        done = _amlpkg("run", "--target", "docker", "--", "python", "train.py", "3", cwd=code)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "hello from the mounted code six 1.16.0" in done.stdout
        (run,) = team.get("/runs").json()
    assert run["status"] == "completed" and run["params"] == {"seed": "3"}
    assert run["tags"]["target"] == "docker" and "score" in run["metrics"]


def test_a_remote_target_refuses_a_workspace_on_this_machine_before_a_run_starts(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    done = _amlpkg("run", "--home", str(home), "--target", "ssh://me@build-box:2222", "--",
                   "python", "-c", "1", cwd=tmp_path)  # fmt: skip
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert done.returncode == 2
    assert "cannot record into the workspace on this machine" in said
    assert "amlpkg server" in said and "amlpkg login" in said
    assert not (home / "amlpkg.db").exists()  # no run was recorded


@pytest.mark.parametrize(
    ("spec", "normalized"),
    [
        ("ssh://me@build-box", "ssh://me@build-box"),
        ("ssh://me@build-box:2222", "ssh://me@build-box:2222"),
        ("ssh://build-box:22/", "ssh://build-box:22"),
        ("ssh://me@[::1]:2222", "ssh://me@[::1]:2222"),
    ],
)
def test_ssh_targets_are_normalized(spec: str, normalized: str) -> None:
    from amlpkg.packager.targets.remote import parse_ssh_host

    assert parse_ssh_host(spec) == normalized


@pytest.mark.parametrize(
    "spec",
    ["ssh://", "ssh://me:secret@box", "ssh://box/images", "ssh://box:99999", "ssh://box?x=1"],
)
def test_bad_ssh_targets_are_refused_with_the_form_to_use(spec: str) -> None:
    from amlpkg.packager.targets.remote import parse_ssh_host

    with pytest.raises(InvalidArgumentError, match="invalid ssh target"):
        parse_ssh_host(spec)


def test_a_loopback_tracking_server_is_refused_for_a_remote_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLPKG_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: not asked
    monkeypatch.setenv("AMLPKG_TRACKING_TOKEN", "amlpkg_x_y")
    done = _amlpkg("run", "--target", "ssh://me@build-box", "--", "python", "-c", "1",
                   cwd=tmp_path)  # fmt: skip
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "loopback address" in said and "--host" in said

    from amlpkg.packager.targets.remote import RemoteDockerTarget
    from amlpkg.trainer.targets import RunContext

    def nowhere(path: str, data: bytes) -> None:
        raise AssertionError("nothing is stored for a refused run")

    env = {**os.environ, "AMLPKG_TRACKING_URI": "http://127.0.0.1:8080"}
    run = RunContext(
        run_id="r" * 32, workdir=tmp_path, env=env, cache_root=tmp_path, add_artifact=nowhere
    )
    target = RemoteDockerTarget(host="ssh://me@build-box")
    with pytest.raises(FailedPreconditionError, match="loopback") as caught:
        target.prepare(run, ["python", "-c", "1"])
    assert "amlpkg server --host" in (caught.value.hint or "")
