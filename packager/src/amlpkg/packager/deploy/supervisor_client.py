"""Start and talk to the supervisor process of a local deployment (see ``supervisor.py``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from amlpkg.errors import UnavailableError
from amlpkg.packager.deploy.supervisor import CONTROL_FILE
from amlpkg.processes import pid_alive


def _pid_alive(pid: int) -> bool:
    try:
        # Reap it when it is an exited child of this process (a zombie counts as gone).
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: the supervisor was started by an earlier `amlpkg deploy`
    return pid_alive(pid)


def shutdown(state_dir: Path, grace_s: float = 5.0) -> None:
    """Stop the supervisor and its runtimes; return once its process is gone."""
    info = control_info(state_dir)
    if info is None:
        return
    call(state_dir, "shutdown", timeout_s=grace_s + 60.0, grace_s=grace_s)
    deadline = time.monotonic() + grace_s + 30.0
    while _pid_alive(int(info["pid"])) and time.monotonic() < deadline:
        time.sleep(0.05)


def control_info(state_dir: Path) -> dict[str, Any] | None:
    """The supervisor's control file when its process is alive, else None."""
    try:
        info: dict[str, Any] = json.loads((state_dir / CONTROL_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return info if _pid_alive(int(info["pid"])) else None


def call(state_dir: Path, op: str, timeout_s: float = 60.0, **fields: Any) -> dict[str, Any]:
    """Send one control request; raise :class:`UnavailableError` when it fails."""
    info = control_info(state_dir)
    if info is None:
        raise UnavailableError(
            f"the local deployment supervisor of {state_dir.name!r} is not running",
            hint="deploy again to start it",
        )
    request = {"op": op, "token": info["token"], **fields}
    try:
        with socket.create_connection(("127.0.0.1", info["control_port"]), timeout_s) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise UnavailableError(f"cannot reach the supervisor of {state_dir.name!r}: {exc}") from exc
    answer: dict[str, Any] = json.loads(data or b"{}")
    if not answer.get("ok"):
        raise UnavailableError(f"supervisor refused {op}: {answer.get('error', 'no answer')}")
    return answer


def ensure_supervisor(
    state_dir: Path, *, host: str, http_port: int, grpc_port: int, timeout_s: float = 30.0
) -> dict[str, Any]:
    """The running supervisor's control info, starting one (detached) when none runs."""
    info = control_info(state_dir)
    if info is not None:
        return info
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / CONTROL_FILE).unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "amlpkg.packager.deploy.supervisor",
        str(state_dir),
        "--host",
        host,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
    ]
    log = state_dir / "supervisor.log"
    # posix_spawn, not Popen: nothing here waits for this long-lived process, and a new
    # session (setsid) lets it outlive the `amlpkg deploy` that started it.
    pid = os.posix_spawn(
        sys.executable,
        argv,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = control_info(state_dir)
        if info is not None:
            return info
        if not _pid_alive(pid):
            break
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
    tail = log_tail(log)
    raise UnavailableError(
        f"the local deployment supervisor did not start: {tail}",
        hint="is the port taken? pick another with --port / --grpc-port",
    )


def log_tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file, one string (for failure reasons)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line for line in text.strip().splitlines()[-lines:]) or "(empty log)"
