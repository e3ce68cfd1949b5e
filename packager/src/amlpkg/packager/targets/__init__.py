"""Compute targets of tracked runs that need Docker: ``--target docker[:IMAGE]``.

``resolve_target`` turns the CLI's ``--target`` text into a target; ``reproduce``
reruns a recorded run on the target and in the very image (by id) it ran in.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import IO

from amlpkg.errors import InvalidArgumentError
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.runner import RunResult, run_tracked
from amlpkg.trainer.store import queries
from amlpkg.trainer.targets import CWD_TAG, TARGET_TAG, RunTarget

SPECS = "local, docker, docker:IMAGE or spark://HOST:PORT"


def _quiet(message: str) -> None:
    del message


def resolve_target(
    spec: str, *, requirements: Path | None = None, on_status: Callable[[str], None] = _quiet
) -> RunTarget | None:
    """The target ``spec`` names; None for ``local`` (this machine, no target)."""
    from amlpkg.packager.targets.docker import DockerTarget
    from amlpkg.trainer.targets.spark import SparkTarget

    kind, _, rest = spec.partition(":")
    if kind == "local" and not rest:
        return None
    if kind == "docker":
        return DockerTarget(image=rest or None, requirements=requirements, on_status=on_status)
    if kind == "spark" and rest.startswith("//"):
        return SparkTarget(master=spec)
    if kind == "ssh":
        raise InvalidArgumentError(
            f"--target {kind}://... is not supported yet", hint=f"use {SPECS}"
        )
    raise InvalidArgumentError(f"unknown target {spec!r}", hint=f"use {SPECS}")


def reproduce_target(tags: dict[str, str]) -> RunTarget | None:
    """The target that reruns a run with these tags where it ran (same image id)."""
    from amlpkg.packager.targets.docker import IMAGE_ID_TAG, DockerTarget
    from amlpkg.trainer.targets.spark import MASTER_TAG, SparkTarget

    kind = tags.get(TARGET_TAG, "local")
    if kind == "local":
        return None
    if kind == "spark" and MASTER_TAG in tags:
        return SparkTarget(master=tags[MASTER_TAG])
    if kind == "docker" and IMAGE_ID_TAG in tags:
        return DockerTarget(image=tags[IMAGE_ID_TAG])
    raise InvalidArgumentError(f"cannot reproduce a run on target {kind!r}")


REPRODUCES_TAG = "reproduces"


def reproduce(
    run_ref: str,
    *,
    home: str | Path | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> RunResult:
    """Rerun the command of ``run_ref`` in its working directory, on its target and image.

    The new run is tagged ``reproduces=<run id>``; its params and metrics can be
    compared with ``amlpkg runs compare``. The code is what the working directory holds
    now: the run's code snapshot says what it held then.
    """
    with open_workspace(home) as ws:
        record = queries.get_run(ws, run_ref)
    target = reproduce_target(record.tags)
    return run_tracked(
        shlex.split(record.info.command),
        experiment=record.experiment,
        name=f"reproduce of {record.id[:8]}",
        home=home,
        cwd=record.tags.get(CWD_TAG),
        stdout=stdout,
        stderr=stderr,
        target=target,
        tags={REPRODUCES_TAG: record.id},
    )
