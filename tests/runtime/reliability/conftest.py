"""Fixtures of the reliability suite: servers with short guard timeouts, memory readings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.conftest import ServerProcess, start_server

GUARD_TIMEOUT_S = 1.0
PROBE_LIMIT_S = 1.0


def vm_hwm_kib(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for process {pid}")


def best_probe_s(url: str, tries: int = 3) -> float:
    """Seconds the fastest of ``tries`` health probes took (each must answer 200).

    The best of a few, so a scheduler hiccup on a loaded 2-core machine does not fail
    the test, while a server that really stalls still does.
    """
    best = float("inf")
    for _ in range(tries):
        start = time.monotonic()
        response = httpx.get(f"{url}/v2/health/live", timeout=10)
        assert response.status_code == 200
        best = min(best, time.monotonic() - start)
    return best


@pytest.fixture(scope="session")
def guarded_server(
    model_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server whose header deadline and body read timeout are short (1 s)."""
    running = start_server(
        model_repo,
        tmp_path_factory.mktemp("guarded"),
        "--http-header-timeout", str(GUARD_TIMEOUT_S),
        "--http-read-timeout", str(GUARD_TIMEOUT_S),
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_server(model_repo: Path, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers of one test (stopped at its end), e.g. to measure their memory."""
    started: list[ServerProcess] = []

    def start(*args: str, repo: Path | None = None) -> ServerProcess:
        server = start_server(repo or model_repo, tmp_path, *args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
