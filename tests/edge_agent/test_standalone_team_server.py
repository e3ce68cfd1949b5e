"""A standalone agent process posting its telemetry to a real team server process.

The server's receiver wants a contributor token: without one the agent says why and keeps
its telemetry in the outbox; restarted with ``--telemetry-token-file`` it delivers the
queued messages, which ``amlpkg telemetry show`` then reads from the server. A token
file that is rewritten is re-read by the running agent: rotation needs no restart.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from amlpkg.edge_agent.outbox import Outbox, OutboxMessage
from amlpkg.edge_agent.standalone import StandaloneLink
from amlpkg.errors import InvalidArgumentError, UnavailableError
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.test_standalone import desired, wait_for
from tests.remote.conftest import TeamServer, _isolated_user, amlpkg, team
from tests.services import free_port

__all__ = ["_isolated_user", "team"]  # a real server process; own config folders

DEVICE = "dev-team"


def _agent(tmp_path: Path, team: TeamServer, state_file: Path, *extra: str,
           env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], Path]:  # fmt: skip
    log = tmp_path / f"agent-{len(list(tmp_path.glob('agent-*.log')))}.log"
    cmd = [
        sys.executable, "-m", "amlpkg.edge_agent", "--standalone", str(state_file),
        "--state-dir", str(tmp_path / "agent"), "--device-id", DEVICE,
        "--host", "127.0.0.1", "--http-port", str(free_port()), "--grpc-port", str(free_port()),
        "--telemetry-url", team.url, "--poll-interval", "0.3", "--log-level", "warning", *extra,
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={**_base_env(), **(env or {})})  # fmt: skip
    return proc, log


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "AMLPKG_TELEMETRY_TOKEN"}


def _stop(proc: subprocess.Popen[str], log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    output = log.read_text()
    assert proc.returncode == 0, output
    return output


def _queued(tmp_path: Path) -> list[str]:
    with Outbox(tmp_path / "agent" / "outbox.db", DEVICE) as box:
        return [m.message_id for m in box.peek(1000)]


def _stored(team: TeamServer, device: str = DEVICE) -> set[str]:
    """The ids of ``device``'s telemetry messages in the server's workspace."""
    with open_workspace(team.home) as ws:
        rows = ws.conn.execute("SELECT message_id FROM telemetry WHERE device_id = ?", (device,))
        return {str(row[0]) for row in rows.fetchall()}


@pytest.mark.slow
def test_telemetry_waits_for_a_token_then_lands_on_the_server(
    team: TeamServer, tmp_path: Path
) -> None:
    state_file = tmp_path / "desired.json"
    state_file.write_text(json.dumps(desired(tmp_path, 1.0, 1)))
    proc, log = _agent(tmp_path, team, state_file)
    try:
        wait_for(lambda: "needs a token (HTTP 401)" in log.read_text(), 60, "the refusal", proc)
    finally:
        output = _stop(proc, log)
    assert "telemetry stays in the outbox" in output and "--telemetry-token-file" in output
    assert output.count("needs a token") == 1  # said once, not once per retry
    queued = _queued(tmp_path)
    assert queued and _stored(team) == set()  # kept, not dropped

    token_file = tmp_path / "token"
    token_file.write_text(team.tokens["contributor"] + "\n")
    proc, log = _agent(tmp_path, team, state_file, "--telemetry-token-file", str(token_file))
    try:
        wait_for(lambda: set(queued) <= _stored(team), 60, "the queued telemetry", proc)
    finally:
        output = _stop(proc, log)
    assert team.tokens["contributor"] not in output  # never logged
    assert "needs a token" not in output
    shown = amlpkg("telemetry", "show", "--device", DEVICE, "--json", env=team.env("reader"))
    [device] = json.loads(shown.stdout)["devices"]
    assert (device["key"], device["models"]) == (DEVICE, ["m:1"])


@pytest.mark.slow
def test_a_rotated_token_file_is_read_without_a_restart(team: TeamServer, tmp_path: Path) -> None:
    state_file = tmp_path / "desired.json"
    state_file.write_text(json.dumps(desired(tmp_path, 1.0, 1)))
    token_file = tmp_path / "token"
    token_file.write_text("amlpkg_old-revoked-token\n")
    proc, log = _agent(tmp_path, team, state_file, "--telemetry-token-file", str(token_file))
    try:
        wait_for(lambda: "refused the token (unknown" in log.read_text(), 60, "the refusal", proc)
        queued = _queued(tmp_path)
        assert queued and _stored(team) == set()
        token_file.write_text(team.tokens["contributor"] + "\n")  # the same agent process
        wait_for(lambda: set(queued) <= _stored(team), 60, "the queued telemetry", proc)
        assert proc.poll() is None  # not restarted
    finally:
        output = _stop(proc, log)
    assert "telemetry accepted by" in output
    assert team.tokens["contributor"] not in output and "old-revoked" not in output


def test_a_half_written_token_file_keeps_the_previous_token(
    team: TeamServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(team.tokens["contributor"])
    link = StandaloneLink("unused", tmp_path, telemetry_url=team.url,
                          telemetry_token_file=token_file)  # fmt: skip
    token_file.write_text("")  # caught between truncation and write
    body = {"message_id": "h1", "device": "dev-h", "time": 1.0, "window_s": 1, "requests": 1}
    asyncio.run(link.send(OutboxMessage(1, "h1", 1.0, json.dumps(body).encode())))
    assert _stored(team, "dev-h") == {"h1"}
    token_file.write_text(team.tokens["reader"])  # rotated to a token without the role
    with pytest.raises(UnavailableError, match=r"HTTP 403"):
        asyncio.run(link.send(OutboxMessage(2, "h2", 1.0, b"{}")))
    token_file.unlink()
    with pytest.raises(InvalidArgumentError, match="cannot read --telemetry-token-file token"):
        StandaloneLink("unused", tmp_path, telemetry_url=team.url, telemetry_token_file=token_file)


def test_a_reader_token_is_refused_and_the_message_kept(team: TeamServer, tmp_path: Path) -> None:
    link = StandaloneLink("unused", tmp_path, telemetry_url=team.url,
                          telemetry_token=team.tokens["reader"])  # fmt: skip
    body = {"message_id": "r1", "device": "dev-r", "time": 1.0, "window_s": 1, "requests": 1}
    message = OutboxMessage(1, "r1", 1.0, json.dumps(body).encode())
    with pytest.raises(UnavailableError, match=r"refused the token's role \(HTTP 403\)") as err:
        asyncio.run(link.send(message))
    assert err.value.hint is not None and "contributor" in err.value.hint
    contributor = StandaloneLink("unused", tmp_path, telemetry_url=team.url,
                                 telemetry_token=team.tokens["contributor"])  # fmt: skip
    asyncio.run(contributor.send(message))
    assert _stored(team, "dev-r") == {"r1"}


def test_an_empty_token_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    done = subprocess.run(
        [sys.executable, "-m", "amlpkg.edge_agent", "--standalone", str(tmp_path / "d.json"),
         "--state-dir", str(tmp_path / "agent"), "--telemetry-token-file", str(empty)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--telemetry-token-file token is empty" in done.stderr
    assert str(tmp_path) not in done.stderr and "Traceback" not in done.stderr


def test_a_refused_post_leaves_no_socket_open(team: TeamServer, tmp_path: Path) -> None:
    """The refusal (HTTPError) holds the answer's socket: the agent closes it, or each
    retry of a long outage would leak one until the garbage collector ran."""
    link = StandaloneLink("unused", tmp_path, telemetry_url=team.url)  # no token: 401
    message = OutboxMessage(1, "x1", 1.0, b"{}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            with pytest.raises(UnavailableError, match="needs a token"):
                asyncio.run(link.send(message))
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
