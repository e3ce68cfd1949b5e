"""Open workspaces shared by request handlers, one handler at a time each.

Handlers run on a thread pool; each request borrows a workspace of its own and
gives it back, so the number of open database engines stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from amlpkg.store.workspace import Workspace, open_workspace


class WorkspacePool:
    """Up to ``size`` idle workspaces on ``home``; more are opened when all are lent."""

    def __init__(self, home: Path, size: int) -> None:
        self.home = home
        self._idle: queue.LifoQueue[Workspace] = queue.LifoQueue(maxsize=size)
        self._closed = False
        self._lock = threading.Lock()
        # Open (and migrate) once now, so a bad store fails at start, not on a request.
        self._idle.put(open_workspace(home))

    @contextmanager
    def workspace(self) -> Iterator[Workspace]:
        """Borrow a workspace for the length of the block."""
        try:
            ws = self._idle.get_nowait()
        except queue.Empty:
            ws = open_workspace(self.home)
        try:
            yield ws
        finally:
            self._give_back(ws)

    def _give_back(self, ws: Workspace) -> None:
        with self._lock:
            if not self._closed:
                try:
                    self._idle.put_nowait(ws)
                    return
                except queue.Full:
                    pass
        ws.close()

    def close(self) -> None:
        """Close every idle workspace; those lent out close when given back."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    self._idle.get_nowait().close()
                except queue.Empty:
                    break
