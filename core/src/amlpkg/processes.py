"""Whether a process still runs, for the commands that leave one behind (supervisors,
spool senders, a Spark cluster's daemons) and find it again by pid."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited process not yet reaped (a zombie) counts as gone.

    A process of another user (``EPERM``) counts as running.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        return True  # no procfs: os.kill's answer stands
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # gone since os.kill
    return state != "Z"
