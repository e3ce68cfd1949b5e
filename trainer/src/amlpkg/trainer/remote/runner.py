"""``amlpkg run`` against a team server: the run, its logs and exit code land there.

The run is created on the server; the child joins it through ``AMLPKG_RUN_ID``
and the tracking URI and token in its environment (so its ``amlpkg.log_*`` calls
spool to the server); the code and environment snapshots and the captured
stdout/stderr are uploaded as the same artifacts the embedded runner stores; the
final status and exit code end the run. With a target (``--target docker``, ``ssh://``,
``spark://``) the child is the target's local process, as with a workspace.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import IO

from amlpkg.errors import AmlpkgError
from amlpkg.trainer import provenance, snapshot
from amlpkg.trainer.provenance import git
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import TRACKING_TOKEN_ENV, TRACKING_URI_ENV, Server, cache_dir
from amlpkg.trainer.runner import LOG_ARTIFACT, RunResult, _run_child
from amlpkg.trainer.targets import (
    COMMAND_TAG,
    CWD_TAG,
    TARGET_TAG,
    Launch,
    RunContext,
    RunTarget,
)
from amlpkg.trainer.tracking import RUN_ID_ENV

log = logging.getLogger(__name__)
MAX_TAG_CHARS = 6000  # the server's bound on a tag value


def _upload_bytes(client: TeamClient, run_id: str, path: str, data: bytes, folder: Path) -> None:
    file = folder / Path(path).name
    file.write_bytes(data)
    client.upload_artifact(run_id, path, file)


def _snapshots(client: TeamClient, run_id: str, cwd: Path, max_bytes: int, folder: Path) -> None:
    """The embedded runner's code and environment snapshots, as artifacts on the server."""
    top = git(cwd, "rev-parse", "--show-toplevel")
    if top is not None:
        root = Path(top.strip())
        diff = git(root, "diff", "HEAD", "--binary") or ""
        untracked = git(root, "ls-files", "--others", "--exclude-standard") or ""
        _upload_bytes(client, run_id, "code/diff.patch", diff.encode(), folder)
        _upload_bytes(client, run_id, "code/untracked.txt", untracked.encode(), folder)
    else:
        data, _ = snapshot.project_tarball(cwd, max_bytes)
        _upload_bytes(client, run_id, "code/project.tar.gz", data, folder)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode == 0:
        _upload_bytes(client, run_id, "environment/requirements.txt", done.stdout, folder)


def run_tracked_remote(
    command: list[str],
    server: Server,
    *,
    experiment: str | None,
    name: str | None,
    cwd: Path,
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
    snapshot_max_bytes: int,
    target: RunTarget | None = None,
    tags: dict[str, str] | None = None,
) -> RunResult:
    """Run ``command`` as a tracked run on ``server`` and wait for it.

    ``target``: where the command runs (None: here); its tags, the working directory
    and the command (for ``amlpkg runs reproduce``) are set on the run with ``tags``.
    """
    where = {
        TARGET_TAG: target.name if target else "local",
        CWD_TAG: str(cwd),
    }
    words = shlex.join(command)
    if len(words) <= MAX_TAG_CHARS:  # a longer command is not reproducible from the server
        where[COMMAND_TAG] = words
    launch: Launch | None = None
    with TeamClient(server, retries=5) as client, tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        info = provenance.collect(words, cwd)
        run_id = str(client.create_run(experiment, name, {**where, **(tags or {})}, info)["id"])
        status, returncode = "failed", None
        try:
            _snapshots(client, run_id, cwd, snapshot_max_bytes, folder)
            env = {
                **os.environ,
                RUN_ID_ENV: run_id,
                TRACKING_URI_ENV: server.url,
                TRACKING_TOKEN_ENV: server.token,
            }
            argv = command
            if target is not None:
                context = RunContext(
                    run_id=run_id, workdir=cwd, env=env, cache_root=cache_dir(),
                    add_artifact=partial(_upload_bytes, client, run_id, folder=folder),
                    snapshot_max_bytes=snapshot_max_bytes,
                )  # fmt: skip
                launch = target.prepare(context, command)
                client.log_batch(run_id, {"tags": launch.tags})
                argv, env = launch.argv, launch.env
            output = folder / "output.log"
            with output.open("w+b") as sink:
                returncode, signalled = _run_child(argv, cwd, env, sink, stdout, stderr)
            client.upload_artifact(run_id, LOG_ARTIFACT, output)
            if signalled or returncode < 0:
                status = "killed"
            else:
                status = "completed" if returncode == 0 else "failed"
        except KeyboardInterrupt:
            status = "killed"
            raise
        finally:
            if launch is not None and launch.cleanup is not None:
                launch.cleanup()
            try:
                client.end_run(run_id, status, returncode)
            except AmlpkgError as exc:  # the run stays 'running' there; say so, keep the exit code
                log.warning("could not end run %s on %s: %s", run_id, server.url, exc)
    assert returncode is not None
    exit_code = returncode if returncode >= 0 else 128 - returncode
    return RunResult(run_id=run_id, status=status, returncode=returncode, exit_code=exit_code)
