"""The SQLite connection of a workspace: WAL, foreign keys, a busy timeout.

Connections run in autocommit mode; every write goes through :func:`write_tx`,
which takes the database write lock up front (``BEGIN IMMEDIATE``) so that a
read-then-write (such as picking the next model version) cannot race another
process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from amlpkg.errors import UnavailableError


def connect(path: Path, *, busy_timeout_s: float = 60.0) -> sqlite3.Connection:
    """Open the workspace database at ``path`` with the settings every caller relies on."""
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise UnavailableError(
            f"cannot open the workspace database {path}: {exc}",
            hint="check that the folder exists and is writable, or set AMLPKG_HOME",
        ) from exc
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across process crashes in WAL mode; only power loss
    # may drop the last commits, never corrupt the database.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction holding the write lock from its first statement."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise UnavailableError(
            f"the workspace database is locked by another process: {exc}",
            hint="retry, or raise AMLPKG_BUSY_TIMEOUT_S",
        ) from exc
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
