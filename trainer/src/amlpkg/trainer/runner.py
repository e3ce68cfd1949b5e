"""``amlpkg run -- CMD ...``: run a command as a tracked run.

The runner creates the run, snapshots code and environment, starts the child
with ``AMLPKG_RUN_ID``/``AMLPKG_HOME`` set (so ``amlpkg.log_*`` in the script
logs into this run), tees the child's stdout/stderr to the console and to the
``logs/output.log`` artifact, and records the final status: ``completed`` (exit
0), ``failed`` (non-zero exit, code kept) or ``killed`` (a signal, or SIGINT /
SIGTERM that the runner received and forwarded to the child).

With a ``target`` (:mod:`amlpkg.trainer.targets`) the child is the local process
that runs the command there (``docker run ...``); everything else is the same, and
the target's tags (image, digest, working directory) are recorded on the run.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.settings import load_settings
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer import provenance, snapshot
from amlpkg.trainer.remote.config import tracking_server
from amlpkg.trainer.store import runs as store_runs
from amlpkg.trainer.targets import CWD_TAG, TARGET_TAG, Launch, RunContext, RunTarget
from amlpkg.trainer.tracking import RUN_ID_ENV

LOG_ARTIFACT = "logs/output.log"


@dataclass(frozen=True)
class RunResult:
    """How a tracked command ended."""

    run_id: str
    status: str
    returncode: int  # as the OS reported it: negative for a signal
    exit_code: int  # what a shell would report: 128 + signal for a signal


def _log_bytes(ws: Workspace, run_id: str, path: str, data: bytes) -> None:
    digest, size = ws.artifacts.put_bytes(data)
    store_runs.add_artifact(ws, run_id, path, digest, size)


def _tee(source: IO[bytes], sink: IO[bytes] | None, log: IO[bytes], lock: threading.Lock) -> None:
    for chunk in iter(lambda: source.read1(65536), b""):  # type: ignore[attr-defined]
        with lock:
            log.write(chunk)
        if sink is not None:
            sink.write(chunk)
            sink.flush()


def run_tracked(
    command: list[str],
    *,
    experiment: str | None = None,
    name: str | None = None,
    home: str | Path | None = None,
    cwd: str | Path | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    target: RunTarget | None = None,
    tags: dict[str, str] | None = None,
) -> RunResult:
    """Run ``command`` as a tracked run and wait for it.

    ``stdout``/``stderr`` are binary streams the child's output is copied to
    (None: not echoed; it still goes to the log artifact). ``target``: where the
    command runs (None: here); ``tags`` are set on the run when it is created.
    """
    if not command:
        raise InvalidArgumentError("no command to run", hint="amlpkg run -- python train.py [ARGS]")
    settings = load_settings(home)
    workdir = Path(cwd) if cwd is not None else Path.cwd()
    server = tracking_server(home)  # a team server (login, AMLPKG_TRACKING_URI) unless home=
    if server is not None:
        from amlpkg.trainer.remote.runner import run_tracked_remote

        return run_tracked_remote(
            command, server, experiment=experiment, name=name, cwd=workdir, stdout=stdout,
            stderr=stderr, snapshot_max_bytes=settings.snapshot_max_bytes, target=target,
            tags=tags,
        )  # fmt: skip
    with open_workspace(settings=settings) as ws:
        info = provenance.collect(shlex.join(command), workdir)
        run_id = store_runs.create_run(ws, experiment, name, info)
        status, returncode = "failed", None
        launch: Launch | None = None
        try:
            where = {TARGET_TAG: target.name if target else "local", CWD_TAG: str(workdir)}
            store_runs.set_tags(ws, run_id, {**where, **(tags or {})})
            snapshot.snapshot_code(ws, run_id, workdir, settings.snapshot_max_bytes)
            snapshot.snapshot_environment(ws, run_id)
            env = {**os.environ, RUN_ID_ENV: run_id, **ws.child_env()}
            argv = command
            if target is not None:
                context = RunContext(
                    run_id=run_id, workdir=workdir, env=env, cache_root=ws.home / "cache",
                    add_artifact=partial(_log_bytes, ws, run_id), workspace=ws,
                    snapshot_max_bytes=settings.snapshot_max_bytes,
                )  # fmt: skip
                launch = target.prepare(context, command)
                store_runs.set_tags(ws, run_id, launch.tags)
                argv, env = launch.argv, launch.env
            with tempfile.TemporaryFile() as log:
                returncode, signalled = _run_child(argv, workdir, env, log, stdout, stderr)
                log.seek(0)
                digest, size = ws.artifacts.put_stream(log)
                store_runs.add_artifact(ws, run_id, LOG_ARTIFACT, digest, size)
            if signalled or returncode < 0:
                status = "killed"
            else:
                status = "completed" if returncode == 0 else "failed"
        except KeyboardInterrupt:
            status = "killed"  # Ctrl-C before the child started
            raise
        finally:
            if launch is not None and launch.cleanup is not None:
                launch.cleanup()
            store_runs.finish_run(ws, run_id, status, returncode)
    exit_code = returncode if returncode >= 0 else 128 - returncode
    return RunResult(run_id=run_id, status=status, returncode=returncode, exit_code=exit_code)


def _run_child(  # noqa: PLR0917 - private helper, called once
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    log: IO[bytes],
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> tuple[int, bool]:
    """Start the child, tee its output, forward SIGINT/SIGTERM; return (returncode, signalled)."""
    try:
        # Own process group: a terminal Ctrl-C reaches only us, and we forward it once.
        child = subprocess.Popen(  # noqa: S603 - argv list from the user, no shell
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
        )
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"cannot run {command[0]!r}: no such program", hint="check the command after --"
        ) from exc
    except PermissionError as exc:
        raise InvalidArgumentError(f"cannot run {command[0]!r}: {exc}") from exc
    signalled = threading.Event()

    def forward(signum: int, frame: FrameType | None) -> None:
        signalled.set()
        child.send_signal(signum)

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, forward)
    lock = threading.Lock()
    assert child.stdout is not None and child.stderr is not None
    threads = [
        threading.Thread(target=_tee, args=(child.stdout, stdout, log, lock), daemon=True),
        threading.Thread(target=_tee, args=(child.stderr, stderr, log, lock), daemon=True),
    ]
    with child:  # closes the pipes when done
        try:
            for thread in threads:
                thread.start()
            returncode = child.wait()
            for thread in threads:
                thread.join()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            if child.poll() is None:
                child.kill()
                child.wait()
    return returncode, signalled.is_set()
