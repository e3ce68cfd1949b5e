"""The embedded workspace: a SQLite database and a content-addressed artifact store."""

from __future__ import annotations

from amlpkg.store.workspace import Workspace, open_workspace

__all__ = ["Workspace", "open_workspace"]
