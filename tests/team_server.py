"""Waiting for a real ``amlpkg server`` process that a test started."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    timeout_s: float = 60.0,
    what: str = "the server",
) -> None:
    """Return once ``url/api/v1/health`` answers 200.

    Fails with the end of ``log`` when the process exits first, or after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)
