"""Where a tracked run's command runs: this machine, or a compute target.

The runner owns a run's record (creation, snapshots, the output log, the final
status); a target only says how to start the command: the argv of a local process
that runs it there (``docker run ...``, ``spark-submit ...``), its environment, the
tags that describe where it ran, and what to clean up after. So every target's runs
are recorded alike, in a workspace or on a team server, and the trainer needs no
Docker or Spark client: targets that build images live with the packager.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from amlpkg.store.workspace import Workspace

# Tags a target sets on the run; `amlpkg runs reproduce` reads them back.
TARGET_TAG = "target"  # "local", "docker", "ssh", "spark"
CWD_TAG = "target.cwd"  # the working directory the command ran in (host path)
COMMAND_TAG = "target.command"  # the command (shell words), for runs on a team server


@dataclass(frozen=True)
class Launch:
    """How the runner starts a command on a target."""

    argv: list[str]
    env: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None  # called once the process ended, always


@dataclass(frozen=True)
class RunContext:
    """What a target is told about the run it prepares."""

    run_id: str
    workdir: Path
    env: dict[str, str]
    """The environment a local child would get: ``AMLPKG_RUN_ID`` and either the
    workspace's (``AMLPKG_HOME``, ...) or the team server's (``AMLPKG_TRACKING_URI``,
    ``AMLPKG_TRACKING_TOKEN``)."""
    cache_root: Path
    """Where a target may keep what it builds (wheels, images' inputs) between runs."""
    add_artifact: Callable[[str, bytes], None]
    """Store bytes as an artifact of the run, wherever the run is recorded."""
    workspace: Workspace | None = None
    """The workspace the run is recorded in; None when it is on a team server."""
    snapshot_max_bytes: int = 20 * 1024 * 1024
    """The cap on the code snapshot (``settings.snapshot_max_bytes``)."""


class RunTarget(Protocol):
    """A compute target: turns a command into a local process that runs it there."""

    name: str

    def prepare(self, run: RunContext, command: list[str]) -> Launch:
        """Make what the command needs (an image, a submission) and say how to start it.

        A target passes on to its command what it needs of ``run.env``.
        """
        ...
