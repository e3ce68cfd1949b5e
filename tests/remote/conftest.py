"""A real ``amlpkg server`` process on a free port over an embedded store, and clients of it.

Every test gets its own config and cache folders (credentials, spools), so nothing
here reads or writes the developer's own login, and no ``AMLPKG_*`` from outside leaks in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.services import free_port
from tests.team_server import wait_healthy

AMLPKG = str(Path(sys.executable).parent / "amlpkg")
ROOT = Path(__file__).resolve().parents[2]


def amlpkg(*args: str, env: dict[str, str] | None = None, check: bool = True,
           cwd: Path | None = None, stdin: str | None = None,
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The CLI as a subprocess; wide output so Rich tables do not wrap."""
    done = subprocess.run(
        [AMLPKG, *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "220", **(env or {})}, cwd=cwd, input=stdin,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@dataclass
class TeamServer:
    """One server process over the workspace ``home``; stop and start it on the same port."""

    home: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until ``/health`` answers."""
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [AMLPKG, "server", "--store", str(self.home), "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_healthy(self.url, self.process, self.log)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then wait)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None

    def api(self, role: str = "reader") -> httpx.Client:
        """An HTTP client of the API with the token of ``role``."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def env(self, role: str = "contributor") -> dict[str, str]:
        """What a training script needs to log to this server."""
        return {"AMLPKG_TRACKING_URI": self.url, "AMLPKG_TRACKING_TOKEN": self.tokens[role]}


@pytest.fixture(autouse=True)
def _isolated_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Own config and cache folders; no workspace, server or run from the environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("AMLPKG_HOME", "AMLPKG_STORE", "AMLPKG_ARTIFACTS", "AMLPKG_RUN_ID",
                 "AMLPKG_TRACKING_URI", "AMLPKG_TRACKING_TOKEN", "AMLPKG_SIGNING_KEY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def _token(home: Path, role: str) -> str:
    done = amlpkg("server", "--store", str(home), "token", "create", "--role", role,
                  "--name", f"test-{role}", "--json")  # fmt: skip
    return str(json.loads(done.stdout)["token"])


@pytest.fixture
def team(tmp_path: Path) -> Iterator[TeamServer]:
    """A started server on a fresh workspace, with a reader and a contributor token."""
    home = tmp_path / "ws"
    server = TeamServer(home, free_port(), tmp_path / "server.log")
    server.tokens = {role: _token(home, role) for role in ("reader", "contributor")}
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run_script(code: str, tmp_path: Path, env: dict[str, str], *args: str,
               wait: bool = True) -> subprocess.Popen[str]:  # fmt: skip
    """Run ``code`` as a training script in ``tmp_path``; wait for it unless told not to."""
    # One file per call: rewriting a file another script is still reading would cut it.
    script = tmp_path / f"script_{uuid.uuid4().hex[:8]}.py"
    script.write_text(code)
    process = subprocess.Popen(
        [sys.executable, str(script), *args], cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    if wait:
        process.wait(180)
    return process
