"""Compute targets of tracked runs: ``--target docker[:IMAGE]``, ``ssh://USER@HOST[:PORT]``
(a remote Docker engine) and ``spark://HOST:PORT``.

``resolve_target`` turns the CLI's ``--target`` text into a target; ``reproduce``
reruns a recorded run (in a workspace or on a team server) on the target and in the
very image (by id) it ran in.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import IO

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.config import tracking_server
from amlpkg.trainer.runner import RunResult, run_tracked
from amlpkg.trainer.store import queries
from amlpkg.trainer.targets import COMMAND_TAG, CWD_TAG, TARGET_TAG, RunTarget

SPECS = "local, docker, docker:IMAGE, ssh://USER@HOST[:PORT] or spark://HOST:PORT"


def _quiet(message: str) -> None:
    del message


def resolve_target(
    spec: str,
    *,
    requirements: Path | None = None,
    on_status: Callable[[str], None] = _quiet,
    home: str | Path | None = None,
) -> RunTarget | None:
    """The target ``spec`` names; None for ``local`` (this machine, no target).

    ``home``: the run's ``--home``; with it (or without a team server) a remote target is
    refused here, before a run is recorded.
    """
    from amlpkg.packager.targets.docker import DockerTarget
    from amlpkg.packager.targets.remote import RemoteDockerTarget, check_reachable, parse_ssh_host
    from amlpkg.trainer.targets.spark import SparkTarget

    kind, _, rest = spec.partition(":")
    if kind == "local" and not rest:
        return None
    if kind == "docker":
        return DockerTarget(image=rest or None, requirements=requirements, on_status=on_status)
    if kind == "spark" and rest.startswith("//"):
        return SparkTarget(master=spec)
    if kind == "ssh":
        host = parse_ssh_host(spec)
        server = tracking_server(home)
        check_reachable(host, server.url if server else None)
        return RemoteDockerTarget(host=host, requirements=requirements, on_status=on_status)
    raise InvalidArgumentError(f"unknown target {spec!r}", hint=f"use {SPECS}")


def reproduce_target(tags: dict[str, str]) -> RunTarget | None:
    """The target that reruns a run with these tags where it ran (same image id)."""
    from amlpkg.packager.targets.docker import IMAGE_ID_TAG, DockerTarget
    from amlpkg.packager.targets.remote import HOST_TAG, RemoteDockerTarget
    from amlpkg.trainer.targets.spark import MASTER_TAG, SparkTarget

    kind = tags.get(TARGET_TAG, "local")
    if kind == "local":
        return None
    if kind == "spark" and MASTER_TAG in tags:
        return SparkTarget(master=tags[MASTER_TAG])
    if kind == "docker" and IMAGE_ID_TAG in tags:
        return DockerTarget(image=tags[IMAGE_ID_TAG])
    if kind == "ssh" and IMAGE_ID_TAG in tags and HOST_TAG in tags:
        return RemoteDockerTarget(host=tags[HOST_TAG], image=tags[IMAGE_ID_TAG])
    raise InvalidArgumentError(f"cannot reproduce a run on target {kind!r}")


REPRODUCES_TAG = "reproduces"


def _recorded(run_ref: str, home: str | Path | None) -> tuple[str, str, str, dict[str, str]]:
    """``(id, experiment, command, tags)`` of a run in the workspace or on the team server."""
    server = tracking_server(home)
    if server is None:
        with open_workspace(home) as ws:
            record = queries.get_run(ws, run_ref)
        run_id, experiment, tags = record.id, record.experiment, record.tags
        command, where = record.info.command, "the workspace"
    else:
        from amlpkg.trainer.remote.client import TeamClient

        with TeamClient(server) as client:
            found = client.get_run(run_ref)
        run_id, experiment = str(found["id"]), str(found["experiment"])
        tags = {str(k): str(v) for k, v in (found.get("tags") or {}).items()}
        command, where = tags.get(COMMAND_TAG), server.url
    if not command:
        raise FailedPreconditionError(
            f"run {run_id} in {where} has no recorded command to rerun",
            hint="only runs started with `amlpkg run` can be reproduced",
        )
    return run_id, experiment, command, tags


def reproduce(
    run_ref: str,
    *,
    home: str | Path | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> RunResult:
    """Rerun the command of ``run_ref`` in its working directory, on its target and image.

    The run is looked up where runs go now (the workspace, or the team server logged in
    to), and so is the new run; it is tagged ``reproduces=<run id>`` and its params and
    metrics can be compared with ``amlpkg runs compare``. The code is what the working
    directory holds now: the run's code snapshot says what it held then.
    """
    run_id, experiment, command, tags = _recorded(run_ref, home)
    return run_tracked(
        shlex.split(command),
        experiment=experiment,
        name=f"reproduce of {run_id[:8]}",
        home=home,
        cwd=tags.get(CWD_TAG),
        stdout=stdout,
        stderr=stderr,
        target=reproduce_target(tags),
        tags={REPRODUCES_TAG: run_id},
    )
