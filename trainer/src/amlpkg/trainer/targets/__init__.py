"""Where a tracked run's command runs: this machine, or a compute target.

The runner owns a run's record (creation, snapshots, the output log, the final
status); a target only says how to start the command: the argv of a local process
that runs it there (``docker run ...``, ``spark-submit ...``), its environment, the
tags that describe where it ran, and what to clean up after. So every target's runs
are recorded alike, and the trainer needs no Docker or Spark client: targets that
build images live with the packager.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from amlpkg.store.workspace import Workspace

# Tags a target sets on the run; `amlpkg runs reproduce` reads them back.
TARGET_TAG = "target"  # "local", "docker", ...
CWD_TAG = "target.cwd"  # the working directory the command ran in (host path)


@dataclass(frozen=True)
class Launch:
    """How the runner starts a command on a target."""

    argv: list[str]
    env: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None  # called once the process ended, always


class RunTarget(Protocol):
    """A compute target: turns a command into a local process that runs it there."""

    name: str

    def prepare(
        self, ws: Workspace, run_id: str, command: list[str], workdir: Path, env: dict[str, str]
    ) -> Launch:
        """Make what the command needs (an image, a submission) and say how to start it.

        ``env`` is the environment a local child would get (``AMLPKG_RUN_ID``,
        ``AMLPKG_HOME``, ...); a target passes what its command needs on to it.
        """
        ...
