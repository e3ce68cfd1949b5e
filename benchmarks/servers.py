"""The servers under test: how each starts, which wire formats it takes, and its lifecycle.

Every server serves one model at a time, on free ports of 127.0.0.1, with the
same batching settings (up to 32 samples, 500 us delay) and ONNX Runtime with
spin-waiting off. :func:`serve` starts one, waits until the model is ready and
always kills its whole process group afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.models import BenchModel, write_repository
from benchmarks.payloads import Wire
from benchmarks.peers import APPS_DIR, peer

MAX_BATCH_SIZE = 32
# Servers with Triton's batcher semantics (ours, PyTriton) use Triton's default delay, 0:
# under load, requests queue while an instance is busy and the next batch takes them all,
# and a lone request runs at once. The other peers batch only within a time window, so
# they get one.
TRITON_QUEUE_DELAY_US = 0
MAX_QUEUE_DELAY_US = 500
START_TIMEOUT_S = 120.0


class ServerStartError(RuntimeError):
    """A server exited or did not get ready in time; the message ends with its log."""


@dataclass(frozen=True)
class Ports:
    """The ports one server listens on."""

    http: int
    grpc: int
    metrics: int


@dataclass(frozen=True)
class Launch:
    """How to start a server process and how to know it is ready."""

    argv: list[str]
    ready_path: str
    env: dict[str, str]


@dataclass(frozen=True)
class ServerDef:
    """A server kind: its name, category, what it speaks, how it launches."""

    name: str
    category: str  # "ours", "python" (a Python peer), "triton" or "reference" (a floor)
    grpc: bool
    http_binary: bool
    http_json: Wire  # V2_JSON, or the server's own JSON when it has no V2 protocol
    launcher: Callable[[BenchModel, Path, Ports], Launch]
    available: Callable[[], str | None]  # None when it can run, else why not
    only_paths: tuple[str, ...] = ()  # the paths it serves, when not every one

    @property
    def v2_http(self) -> bool:
        """Whether it speaks the V2 protocol over HTTP."""
        return self.http_json is Wire.V2_JSON

    def http_wire(self, model: BenchModel) -> Wire:
        """The HTTP body format for ``model``: binary tensors for the CNN where supported."""
        if model.name == "cnn" and self.http_binary:
            return Wire.V2_BINARY
        return self.http_json


@dataclass(frozen=True)
class Endpoint:
    """Where a started server answers."""

    http_base: str
    grpc_target: str | None
    pid: int | None = None  # the started process: its tree's CPU is the server's


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listens on now (the kernel's picks for port 0)."""
    # All bound at once, so the kernel cannot hand out the same port twice.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _ours(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    # No thread settings in config.yaml: the runtime's own defaults are what is measured.
    repo = write_repository(workdir / "repo", [model], MAX_BATCH_SIZE, TRITON_QUEUE_DELAY_US)
    argv = [sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(repo)]
    argv += ["--host", "127.0.0.1", "--http-port", str(ports.http)]
    argv += ["--grpc-port", str(ports.grpc), "--log-level", "warning"]
    return Launch(argv, f"/v2/models/{model.name}/ready", {})


def _ours_workers(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    # One worker process per CPU (``--workers``), each with its share of the CPUs.
    base = _ours(model, workdir, ports)
    workers = max(2, len(os.sched_getaffinity(0)))
    return Launch([*base.argv, "--workers", str(workers)], base.ready_path, {})


def ours_from(source: Path, name: str) -> ServerDef:
    """Our runtime imported from ``source`` (put first on PYTHONPATH), e.g. an old commit."""

    def launch(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
        base = _ours(model, workdir, ports)
        return Launch(base.argv, base.ready_path, {"PYTHONPATH": str(source)})

    return ServerDef(name, "ours", True, True, Wire.V2_JSON, launch, _ours_available)


def _ours_available() -> str | None:
    try:
        found = importlib.util.find_spec("amlpkg.runtime.__main__") is not None
    except ImportError as exc:
        return f"amlpkg.runtime does not import: {exc}"
    return None if found else "amlpkg.runtime has no __main__ yet"


def _model_file(model: BenchModel, workdir: Path) -> Path:
    repo = write_repository(workdir / "repo", [model], MAX_BATCH_SIZE, MAX_QUEUE_DELAY_US)
    return repo / model.name / "1" / "model.onnx"


def _peer_env() -> dict[str, str]:
    return {"PYTHONPATH": str(APPS_DIR)}


def _mlserver(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    path = _model_file(model, workdir)
    root = workdir / "mlserver"
    (root / model.name).mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": ports.http,
        "grpc_port": ports.grpc,
        "metrics_port": ports.metrics,
        # One process: inference in the server process, as ours does.
        "parallel_workers": 0,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    model_settings = {
        "name": model.name,
        "implementation": "mlserver_app.OrtRuntime",
        "max_batch_size": MAX_BATCH_SIZE,
        "max_batch_time": MAX_QUEUE_DELAY_US / 1e6,
        "parameters": {"uri": str(path)},
    }
    (root / model.name / "model-settings.json").write_text(
        json.dumps(model_settings), encoding="utf-8"
    )
    argv = [str(peer("mlserver").venv / "bin" / "mlserver"), "start", str(root)]
    return Launch(argv, f"/v2/models/{model.name}/ready", _peer_env())


def _litserve(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    path = _model_file(model, workdir)
    argv = [str(peer("litserve").python), str(APPS_DIR / "litserve_app.py")]
    argv += ["--model-path", str(path), "--port", str(ports.http)]
    argv += ["--sample-shape", ",".join(map(str, model.sample_shape))]
    argv += ["--max-batch-size", str(MAX_BATCH_SIZE)]
    argv += ["--batch-timeout", str(MAX_QUEUE_DELAY_US / 1e6)]
    return Launch(argv, "/health", _peer_env())


def _bentoml(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    path = _model_file(model, workdir)
    bentoml = str(peer("bentoml").venv / "bin" / "bentoml")
    argv = [bentoml, "serve", "bentoml_app:OrtService", "--working-dir", str(APPS_DIR)]
    argv += ["--host", "127.0.0.1", "--port", str(ports.http)]
    env = {
        **_peer_env(),
        "BENCH_MODEL_PATH": str(path),
        "BENCH_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
        # BentoML has no queue delay setting; max_latency_ms is its latency budget.
        "BENCH_MAX_LATENCY_MS": "1000",
        "BENTOML_HOME": str(workdir / "bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    return Launch(argv, "/readyz", env)


def _pytriton(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    path = _model_file(model, workdir)
    argv = [str(peer("pytriton").python), str(APPS_DIR / "pytriton_app.py")]
    argv += ["--model-path", str(path), "--model-name", model.name]
    argv += ["--sample-shape", ",".join(map(str, model.sample_shape))]
    argv += ["--http-port", str(ports.http), "--grpc-port", str(ports.grpc)]
    argv += ["--metrics-port", str(ports.metrics)]
    argv += ["--max-batch-size", str(MAX_BATCH_SIZE), "--delay-us", str(TRITON_QUEUE_DELAY_US)]
    # Triton's Python backend stub links whatever libpython3.11 the loader finds first
    # (Debian's 3.11.2) but imports the venv's standard library (ours, a newer 3.11):
    # the mix fails in multiprocessing. Put our interpreter's libpython first.
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = {
        **_peer_env(),
        "LD_LIBRARY_PATH": ":".join(
            p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p
        ),
    }
    return Launch(argv, f"/v2/models/{model.name}/ready", env)


def _grpc_floor(mode: str) -> Callable[[BenchModel, Path, Ports], Launch]:
    def launch(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
        argv = [sys.executable, str(APPS_DIR / "grpc_floor_app.py"), "--mode", mode]
        argv += ["--model-path", str(_model_file(model, workdir)), "--model-name", model.name]
        argv += ["--sample-shape", ",".join(map(str, model.sample_shape))]
        argv += ["--grpc-port", str(ports.grpc), "--http-port", str(ports.http)]
        return Launch(argv, "/ready", {})

    return launch


def _floor_def(mode: str) -> ServerDef:
    launch, v2 = _grpc_floor(mode), Wire.V2_JSON
    name = f"grpcio-{mode}-floor"
    return ServerDef(name, "reference", True, False, v2, launch, _ours_available, ("grpc",))


def _peer_available(name: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if peer(name).python.exists():
            return None
        return f"not installed: python -m benchmarks.peers setup {name}"

    return check


def server_defs() -> list[ServerDef]:
    """Every server the harness knows, ours first."""
    v2, lit, bento = Wire.V2_JSON, Wire.LITSERVE_JSON, Wire.BENTOML_JSON
    return [
        ServerDef("amlpkg", "ours", True, True, v2, _ours, _ours_available),
        ServerDef("amlpkg-workers", "ours", True, True, v2, _ours_workers, _ours_available),
        ServerDef("mlserver", "python", True, False, v2, _mlserver, _peer_available("mlserver")),
        ServerDef("litserve", "python", False, False, lit, _litserve, _peer_available("litserve")),
        ServerDef("bentoml", "python", False, False, bento, _bentoml, _peer_available("bentoml")),
        ServerDef("pytriton", "triton", True, True, v2, _pytriton, _peer_available("pytriton")),
        # What grpcio alone costs per call (no batching, ORT inline): the most any Python
        # gRPC front end could serve here. Reference rows, not peers.
        *(_floor_def(mode) for mode in ("aio", "sync")),
    ]


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a server's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
    timeout_s: float = START_TIMEOUT_S,
    log_lines: int = 15,
) -> None:
    """Poll ``url`` until it answers 200; :class:`ServerStartError` with the log's tail if
    the process exits or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_tail(log, log_lines)
                raise ServerStartError(f"exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.25)
    raise ServerStartError(f"not ready after {timeout_s:.0f} s:\n{log_tail(log, log_lines)}")


def stop_group(proc: subprocess.Popen[bytes], term_wait_s: float = 10.0) -> None:
    """Stop a server started in its own session, and every child of it (workers, Triton's
    stubs, MLflow's job runner): SIGTERM to the group, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
    # Whatever survived in the group (a child that ignored SIGTERM) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(defn: ServerDef, model: BenchModel, workdir: Path) -> Iterator[Endpoint]:
    """Start ``defn`` serving ``model``; yield its endpoint; always stop it."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports = Ports(*free_ports(3))
    launch = defn.launcher(model, workdir, ports)
    log = workdir / f"{defn.name}-{model.name}.log"
    env = {**os.environ, **launch.env, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            launch.argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{ports.http}"
            wait_ready(proc, base + launch.ready_path, log)
            grpc_target = f"127.0.0.1:{ports.grpc}" if defn.grpc else None
            yield Endpoint(base, grpc_target, proc.pid)
        finally:
            stop_group(proc)
