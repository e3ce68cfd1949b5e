"""Versioned schema migrations for the workspace database.

Each role owns its tables and ships them beside its code as a module with
``MIGRATIONS = ((version, sql), ...)``, announced by its distribution's
``amlpkg.schema`` entry point; the workspace applies the migrations of every role
installed. Versions are unique across roles (a duplicate is refused) and run in
order. The lineage edges every stage writes are the core's own (version 0).

Each migration runs once, inside the transaction that records it in
``schema_migrations``, so a crash mid-migration leaves the previous version.
"""

from __future__ import annotations

import importlib
import sqlite3
import time
from functools import cache
from importlib.metadata import entry_points

from amlpkg.errors import InternalError
from amlpkg.store.db import write_tx

ENTRY_POINT_GROUP = "amlpkg.schema"

# IF NOT EXISTS: workspaces made before the tables were split by role created the
# edges in the trainer's migration 1.
LINEAGE_EDGES_SQL = """
CREATE TABLE IF NOT EXISTS lineage_edges (
    id INTEGER PRIMARY KEY,
    src_kind TEXT NOT NULL,
    src_id TEXT NOT NULL,
    dst_kind TEXT NOT NULL,
    dst_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (src_kind, src_id, dst_kind, dst_id, relation)
);
CREATE INDEX IF NOT EXISTS lineage_by_src ON lineage_edges(src_kind, src_id);
CREATE INDEX IF NOT EXISTS lineage_by_dst ON lineage_edges(dst_kind, dst_id);
"""

CORE_MIGRATIONS: tuple[tuple[int, str], ...] = ((0, LINEAGE_EDGES_SQL),)


@cache
def _installed() -> tuple[tuple[int, str], ...]:
    found: dict[int, tuple[str, str]] = {v: ("amlpkg.store", sql) for v, sql in CORE_MIGRATIONS}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        module = importlib.import_module(entry.value)
        for version, sql in module.MIGRATIONS:
            if version in found:
                raise InternalError(
                    f"migration {version} is declared by both {found[version][0]} and"
                    f" {entry.value}",
                    hint="reinstall amlpkg's distributions from one release",
                )
            found[version] = (entry.value, sql)
    return tuple(sorted((version, sql) for version, (_, sql) in found.items()))


def installed_migrations() -> tuple[tuple[int, str], ...]:
    """Every migration of the installed roles, in version order."""
    return _installed()


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """The migrations recorded as applied (empty for a new database)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if row is None:
        return set()
    return {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for an empty database."""
    return max(applied_versions(conn), default=0)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration not recorded yet, in order; return those applied now.

    Missing versions are applied even below the highest recorded one, so a
    workspace made by a build that lacked a stage still gets that stage's tables.
    """
    applied: list[int] = []
    migrations = installed_migrations()
    if {v for v, _ in migrations} <= applied_versions(conn):
        return applied
    with write_tx(conn):
        # Re-check under the write lock: another process may have migrated meanwhile.
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied REAL NOT NULL)"
        )
        done = applied_versions(conn)
        for version, sql in migrations:
            if version in done:
                continue
            # executescript would COMMIT the open transaction; run statements one by one.
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
                (version, time.time()),
            )
            applied.append(version)
    return applied
