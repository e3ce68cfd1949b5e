"""A workspace: the SQLite database and the artifact store under one home folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType

from amlpkg.errors import InvalidArgumentError
from amlpkg.settings import WorkspaceSettings, load_settings
from amlpkg.store.artifacts import ArtifactStore
from amlpkg.store.db import connect
from amlpkg.store.migrations import migrate

DB_NAME = "amlpkg.db"


class Workspace:
    """An open workspace. Use as a context manager, or call :meth:`close`."""

    def __init__(self, home: Path, conn: sqlite3.Connection) -> None:
        self.home = home
        self.conn = conn
        self.artifacts = ArtifactStore(home / "artifacts")

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_workspace(
    home: str | Path | None = None, *, settings: WorkspaceSettings | None = None
) -> Workspace:
    """Open (creating and migrating if needed) the workspace at ``home``.

    ``home`` wins over ``AMLPKG_HOME``, which wins over ``./.amlpkg``.
    """
    settings = settings or load_settings(home)
    root = settings.home.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(
            f"workspace home {root} is a file, not a folder",
            hint="point --home or AMLPKG_HOME at a folder",
        )
    root.mkdir(parents=True, exist_ok=True)
    conn = connect(root / DB_NAME, busy_timeout_s=settings.busy_timeout_s)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return Workspace(root, conn)
