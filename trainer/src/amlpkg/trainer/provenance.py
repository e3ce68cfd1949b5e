"""Where a run comes from: git commit and dirtiness, host, user, Python version.

Standard library only: the tracking API and the runner both use it.
"""

from __future__ import annotations

import getpass
import platform
import socket
import subprocess
import sys
from pathlib import Path

from amlpkg.trainer.store.runs import RunInfo


def git(cwd: Path, *args: str, timeout: float = 20.0) -> str | None:
    """stdout of ``git ARGS`` in ``cwd``, or None when git or the repository is missing."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def git_state(cwd: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the repository holding ``cwd``; ``(None, None)`` outside git."""
    commit = git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git(cwd, "status", "--porcelain", "--untracked-files=normal")
    return commit.strip(), bool(status and status.strip())


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return None


def collect(command: str, cwd: Path) -> RunInfo:
    """The provenance of a run started now in ``cwd`` with ``command``."""
    commit, dirty = git_state(cwd)
    return RunInfo(
        command=command,
        git_commit=commit,
        git_dirty=dirty,
        python_version=platform.python_version(),
        host=socket.gethostname(),
        user=_user(),
    )


def current_command() -> str:
    """The command line of this Python process."""
    import shlex

    return shlex.join([sys.executable, *sys.argv])
