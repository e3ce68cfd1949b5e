"""Fixtures of the transport tests: a toy model repository and real server processes.

A server here is ``python -m amlpkg.runtime`` in a subprocess on free ports, waited on
until ready and always terminated by the fixture's finalizer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.runtime import toy_models
from tests.services import free_port

IDENTITY_TYPES = (
    "FP32",
    "FP16",
    "FP64",
    "INT8",
    "INT32",
    "INT64",
    "UINT8",
    "UINT64",
    "BOOL",
    "BYTES",
)
MAX_REQUEST_SIZE = 1024 * 1024
QUEUE_DELAY_S = 2.0


def identity_name(datatype: str) -> str:
    """Repository name of the identity model of a datatype."""
    return f"identity_{datatype.lower()}"


def build_repository(root: Path) -> Path:
    """The toy repository every server test uses."""
    for datatype in IDENTITY_TYPES:
        toy_models.save(toy_models.identity_model(datatype), root, identity_name(datatype))
        (root / identity_name(datatype) / "config.yaml").write_text("max_batch_size: 8\n")
    toy_models.save(toy_models.add_sub_model(), root, "add_sub")
    (root / "add_sub" / "config.yaml").write_text(
        "max_batch_size: 8\ndynamic_batching: {max_queue_delay_microseconds: 200}\n"
    )
    # Two versions with different weights, both served.
    toy_models.save(toy_models.mlp_model(seed=0), root, "mlp", version=1)
    toy_models.save(toy_models.mlp_model(seed=1), root, "mlp", version=2)
    (root / "mlp" / "config.yaml").write_text(
        "max_batch_size: 64\ndynamic_batching: {max_queue_delay_microseconds: 200}\n"
        "version_policy: {all: true}\n"
    )
    # Only for load/unload tests, so they cannot disturb the others.
    toy_models.save(toy_models.identity_model("FP32"), root, "spare")
    # A second dim that varies makes requests incompatible: one waits in the batch for
    # QUEUE_DELAY_S, one waits in the queue of size 1, and a third is refused.
    toy_models.save(toy_models.identity_model("FP32", ("batch", "n")), root, "tiny_queue")
    (root / "tiny_queue" / "config.yaml").write_text(
        "max_batch_size: 8\n"
        f"dynamic_batching: {{max_queue_delay_microseconds: {int(QUEUE_DELAY_S * 1e6)}, "
        "max_queue_size: 1, idle_runs_at_once: false}\n"
    )
    return root


@dataclass
class ServerProcess:
    """A running ``python -m amlpkg.runtime``."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path
    scheme: str = "http"

    @property
    def http_url(self) -> str:
        """``host:port`` as tritonclient.http wants it."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def base_url(self) -> str:
        """Full base URL for httpx."""
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` for gRPC clients."""
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def start_server(
    repo: Path,
    workdir: Path,
    *extra_args: str,
    env: dict[str, str] | None = None,
    scheme: str = "http",
    verify: str | bool = False,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start the server on free ports and wait until ``/v2/health/ready`` answers 200."""
    http_port, grpc_port = free_port(), free_port()
    log_path = workdir / f"server-{http_port}.log"
    args = [
        sys.executable, "-m", "amlpkg.runtime",
        "--model-repository", str(repo),
        "--host", "127.0.0.1",
        "--http-port", str(http_port),
        "--grpc-port", str(grpc_port),
        "--max-request-size", str(MAX_REQUEST_SIZE),
        "--grpc-max-message-size", str(MAX_REQUEST_SIZE),
        "--shutdown-timeout", "10",
        *extra_args,
    ]  # fmt: skip
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = ServerProcess(process, http_port, grpc_port, log_path, scheme)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/v2/health/ready", verify=verify).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.log()}")


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy repository (built once per session)."""
    return build_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One plain server (no auth, no TLS) shared by the session's protocol tests."""
    running = start_server(model_repo, tmp_path_factory.mktemp("server"))
    try:
        yield running
    finally:
        running.stop()
