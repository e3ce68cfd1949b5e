"""CPU used by a server's process tree and by a client process, read from ``/proc``.

A server may be several processes (PyTriton: Triton's C++ server, a Python backend
stub and the model process), so its CPU is summed over every process descended from
the one the harness started, plus any in that process's session (the harness starts
servers with ``start_new_session``, so a re-parented daemon still counts). A
:class:`CpuSampler` thread reads the counters a few times a second while a load runs,
and :func:`window_cores` turns the samples into cores over the middle of the run
(start-up, when the client is not loading the server yet, left out).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the sampler needs."""

    pid: int
    ppid: int
    session: int
    cpu_s: float  # user + system of the process and its reaped children


def parse_stat(pid: int, text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line (the command name may hold spaces and ')')."""
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5): state, ppid, pgrp, session, ..., utime is field 14.
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ProcStat(pid, int(fields[1]), int(fields[3]), (utime + stime + cutime + cstime) / _TICKS)


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """The stat of ``pid``, or None when it has gone."""
    try:
        return parse_stat(pid, (proc / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def all_stats(proc: Path = PROC) -> list[ProcStat]:
    """Every process visible now."""
    found = (read_stat(int(p.name), proc) for p in proc.iterdir() if p.name.isdigit())
    return [s for s in found if s is not None]


def tree(root: int, stats: list[ProcStat]) -> set[int]:
    """``root``, its descendants and the members of its session."""
    members = {root} | {s.pid for s in stats if s.session == root}
    children: dict[int, list[int]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat.pid)
    todo = list(members)
    while todo:  # bounded: each pid enters ``members`` once
        for child in children.get(todo.pop(), []):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members


@dataclass(frozen=True)
class Sample:
    """Cumulative CPU seconds of the server tree and the client at a moment."""

    t: float
    server_s: float
    client_s: float


def window_cores(
    samples: list[Sample], skip_s: float = 1.0, skip_fraction: float = 0.25
) -> tuple[float | None, float | None]:
    """(server cores, client cores) between the first sample after the start-up skip
    (``min(skip_s, skip_fraction * run)``) and the last sample; None without two samples.
    """
    if len(samples) < 2:
        return None, None
    span = samples[-1].t - samples[0].t
    start = samples[0].t + min(skip_s, skip_fraction * span)
    first = next(s for s in samples if s.t >= start)
    last = samples[-1]
    wall = last.t - first.t
    if wall <= 0:
        first = samples[0]
        wall = last.t - first.t
    if wall <= 0:
        return None, None
    return (last.server_s - first.server_s) / wall, (last.client_s - first.client_s) / wall


class CpuSampler:
    """A daemon thread sampling the server tree's and the client's CPU every ``interval_s``."""

    def __init__(
        self,
        server_pid: int | None,
        client_pid: int | None = None,
        interval_s: float = 0.25,
        rescan_s: float = 2.0,
    ) -> None:
        self.server_pid = server_pid
        self.client_pid = client_pid
        self.interval_s = interval_s
        self.rescan_s = rescan_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._members: set[int] = set()
        self._found_at = -1e9

    def _server_cpu(self, now: float) -> float:
        if self.server_pid is None:
            return 0.0
        # Finding the tree scans all of /proc: do it rarely (servers are started by now).
        if now - self._found_at > self.rescan_s:
            self._members = tree(self.server_pid, all_stats())
            self._found_at = now
        stats = (read_stat(pid) for pid in self._members)
        return sum(s.cpu_s for s in stats if s is not None)

    def sample(self) -> None:
        """Take one sample now."""
        now = time.monotonic()
        client = read_stat(self.client_pid) if self.client_pid else None
        # A client that has exited keeps its last reading (its /proc entry is gone).
        last = self.samples[-1].client_s if self.samples else 0.0
        client_s = client.cpu_s if client else last
        self.samples.append(Sample(now, self._server_cpu(now), client_s))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def cores(self) -> tuple[float | None, float | None]:
        """(server cores, client cores) over the middle of the sampled run."""
        return window_cores(self.samples)
