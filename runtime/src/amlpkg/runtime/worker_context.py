"""What one worker process of a multi-process server knows about its siblings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """Worker ``index`` of ``count``; ``book`` is the shared memory registrations they
    share; ``stats`` the folder of their statistics sockets; ``parent`` the pid of the
    process that supervises them."""

    index: int
    count: int
    book: Path
    stats: Path
    parent: int
