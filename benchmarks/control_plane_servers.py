"""The two tracking servers of :mod:`benchmarks.control_plane_mlflow`, on one PostgreSQL.

MLflow lives in its own virtualenv (``.bench-venvs/mlflow``, made here on first use),
never in ours. Each server gets a fresh database of the same cluster, a local artifact
folder and one worker process on a free port of 127.0.0.1; both are stopped (their whole
process group) when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.servers import ServerStartError, free_ports, stop_group, wait_ready

REPO = Path(__file__).resolve().parent.parent
MLFLOW_VENV = REPO / ".bench-venvs" / "mlflow"
MLFLOW_REQUIREMENTS = ("mlflow>=3,<4", "psycopg[binary]")
SERVICES_DIR = Path(os.environ.get("AMLPKG_SERVICES_DIR", "/tmp/amlpkg-services"))
DATABASE_ENV = "AMLPKG_TEST_DATABASE_URL"
START_TIMEOUT_S = 180.0  # MLflow creates its ~60 tables on a fresh database first
WORKERS = 1  # server worker processes on each side
MLFLOW_POOL_SIZE = 40


class SetupError(RuntimeError):
    """Something the benchmark needs is missing; the message says how to get it."""


@dataclass(frozen=True)
class Server:
    """A started server: its base URL, root pid and what it runs as."""

    name: str
    url: str
    pid: int
    database: str  # a postgresql+psycopg URL
    token: str = ""  # ours only
    note: str = ""  # how it runs (processes, workers)


def mlflow_python(venv: Path = MLFLOW_VENV) -> Path:
    """The MLflow venv's python, creating the venv (pip) when it is missing."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mlflow, psycopg"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"installing {' '.join(MLFLOW_REQUIREMENTS)} into {venv} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *MLFLOW_REQUIREMENTS],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise SetupError(
            f"pip could not install MLflow into {venv}:\n{tail}\n"
            "Is a package index reachable? Install it by hand, then rerun:\n"
            f"  python -m venv {venv} && {python} -m pip install "
            + " ".join(f"'{r}'" for r in MLFLOW_REQUIREMENTS)
        )
    return python


def mlflow_version(python: Path) -> str:
    """``mlflow.__version__`` in its venv."""
    done = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def database_url() -> str:
    """The PostgreSQL the services script started (a role that may create databases)."""
    url = os.environ.get(DATABASE_ENV, "")
    for path in sorted(SERVICES_DIR.glob("env.*")) if not url and SERVICES_DIR.is_dir() else []:
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == DATABASE_ENV:
                url = value.strip()
    if not url:
        raise SetupError(
            f"no PostgreSQL: set {DATABASE_ENV}=postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
            " (a role with CREATEDB), or start .ci/services.sh"
        )
    return url


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` on ``admin_url``'s cluster; its URL."""
    import psycopg

    plain = admin_url.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` if it exists (its server has stopped)."""
    import psycopg

    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_rows(url: str, sql: str, args: tuple[object, ...] = ()) -> int:
    """The single number ``sql`` answers on the database at ``url``."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=10) as conn:
        row = conn.execute(sql, args).fetchone()
    return int(row[0]) if row else 0


def postgres_version(url: str) -> str:
    """``SHOW server_version`` of the cluster at ``url``."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


@contextlib.contextmanager
def _started(
    argv: list[str], env: dict[str, str], log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=log.parent,
            start_new_session=True,
        )
        try:
            try:
                wait_ready(proc, ready_url, log, START_TIMEOUT_S, log_lines=20)
            except ServerStartError as exc:
                raise SetupError(f"{ready_url} {exc}") from None
            yield proc
        finally:
            # MLflow's server has children (uvicorn, a job runner, huey): the whole group.
            stop_group(proc, term_wait_s=15.0)


def amlpkg_env(database: str, home: Path) -> dict[str, str]:
    """The environment our server and its CLI run with (store in the environment, not argv)."""
    return {"AMLPKG_STORE": database, "AMLPKG_HOME": str(home)}


def amlpkg_token(database: str, home: Path) -> str:
    """A contributor token of the workspace on ``database`` (``amlpkg server token create``)."""
    import json

    cli = Path(sys.executable).with_name("amlpkg")
    done = subprocess.run(
        [str(cli), "server", "token", "create", "--role", "contributor", "--json"],
        env={**os.environ, **amlpkg_env(database, home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(f"amlpkg server token create failed:\n{done.stderr[-2000:]}")
    return str(json.loads(done.stdout)["token"])


@contextlib.contextmanager
def amlpkg_server(database: str, workdir: Path) -> Iterator[Server]:
    """``amlpkg server`` (one uvicorn process) on ``database``, artifacts in its home folder."""
    home = workdir / "amlpkg-home"
    token = amlpkg_token(database, home)
    (port,) = free_ports(1)
    cli = Path(sys.executable).with_name("amlpkg")
    argv = [str(cli), "server", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    env = amlpkg_env(database, home)
    with _started(argv, env, workdir / "amlpkg-server.log", url + "/api/v1/health") as proc:
        note = "amlpkg server: 1 uvicorn process (async loop + thread pool), 8 DB connections"
        yield Server("amlpkg", url, proc.pid, database, token=token, note=note)


@contextlib.contextmanager
def mlflow_server(python: Path, database: str, workdir: Path) -> Iterator[Server]:
    """``mlflow server --workers 1`` on ``database``, artifacts in a local folder."""
    (port,) = free_ports(1)
    backend = database.replace("postgresql+psycopg://", "postgresql://")
    argv = [str(python.with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(WORKERS), "--backend-store-uri", backend]
    argv += ["--artifacts-destination", str(workdir / "mlflow-artifacts")]
    url = f"http://127.0.0.1:{port}"
    # MLflow's own telemetry off: nothing leaves the machine, and nothing costs time.
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    # Its default pool (5 + 10 overflow) stalls under its own async-logging client: four
    # such clients (10 request threads each) left every request waiting 30 s for a
    # connection ("QueuePool limit ... reached"). One connection per request thread of
    # its server (uvicorn's pool of 40) removes the stall.
    env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] = str(MLFLOW_POOL_SIZE)
    with _started(argv, env, workdir / "mlflow-server.log", url + "/health") as proc:
        note = (
            f"mlflow server --workers {WORKERS}: 1 uvicorn process serving the API (plus its"
            f" idle job runner and huey consumer); MLFLOW_SQLALCHEMYSTORE_POOL_SIZE="
            f"{MLFLOW_POOL_SIZE} (its default pool of 5 + 10 stalled: see below)"
        )
        yield Server("mlflow", url, proc.pid, database, note=note)
