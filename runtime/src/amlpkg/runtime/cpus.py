"""How many CPUs this server process may use for ONNX Runtime's threads.

A container limited to 2 CPUs by its quota (Kubernetes ``resources.limits.cpu``) still
sees every CPU of the node in its affinity mask: sizing thread pools by the mask there
starts dozens of threads that the quota then throttles. So the default is the smallest
of the affinity mask and the CPU quota of the process's cgroup (v2 ``cpu.max`` or v1
``cpu.cfs_quota_us``, on its own group and every group above it). The server's
``cpus`` setting overrides it, and ``workers`` processes each get their share
(:func:`set_budget`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


class _Budget:
    """The process's CPU budget; None until the server sets one."""

    cpus: int | None = None


_BUDGET = _Budget()


def affinity_cpus() -> int:
    """The CPUs the process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _quota(text: str, period_text: str | None = None) -> float | None:
    """CPUs a cgroup quota allows: v2 ``"150000 100000"`` or v1 quota + period."""
    fields = text.split()
    if period_text is not None:
        fields = [*fields[:1], period_text.strip()]
    if len(fields) != 2 or fields[0] in ("max", "-1"):
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _groups(root: Path, proc_cgroup: str) -> list[tuple[Path, bool]]:
    """The cgroup folders holding the process's CPU limits, with whether each is v2."""
    found = []
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not hierarchy or not path.startswith("/"):
            continue
        if controllers == "":  # v2 unified hierarchy
            found.append((root / path.lstrip("/"), True))
        elif "cpu" in controllers.split(","):
            found.append((root / controllers / path.lstrip("/"), False))
    return found


def quota_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The tightest CPU quota on the process's cgroup and its ancestors; None if unlimited."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    limits: list[float] = []
    for group, v2 in _groups(root, proc_cgroup):
        folder = group
        while True:
            try:
                if v2:
                    limit = _quota((folder / "cpu.max").read_text())
                else:
                    limit = _quota(
                        (folder / "cpu.cfs_quota_us").read_text(),
                        (folder / "cpu.cfs_period_us").read_text(),
                    )
            except (OSError, UnicodeDecodeError):
                limit = None
            if limit is not None:
                limits.append(limit)
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return min(limits) if limits else None


def machine_cpus() -> int:
    """The CPUs the process may use: affinity, capped by the cgroup quota (rounded up)."""
    cpus = affinity_cpus()
    quota = quota_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def set_budget(cpus: int | None) -> None:
    """Give this process ``cpus`` CPUs (the server's setting or a worker's share)."""
    _BUDGET.cpus = None if cpus is None else max(1, int(cpus))


def budget() -> int:
    """The CPUs this process's models share: the budget set, else :func:`machine_cpus`."""
    return _BUDGET.cpus if _BUDGET.cpus is not None else machine_cpus()
