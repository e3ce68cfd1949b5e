"""Versioned schema migrations for the workspace database.

Each migration runs once, inside the transaction that records it in
``schema_migrations``, so a crash mid-migration leaves the previous version.
Later stages (variants, packages, deployments, devices) add migrations and rows
in ``lineage_edges``; they never need a second store.
"""

from __future__ import annotations

import sqlite3
import time

from amlpkg.trainer.store import (
    schema_deployments,
    schema_packages,
    schema_telemetry,
    schema_variants,
)
from amlpkg.trainer.store.db import write_tx

_V1 = """
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    name TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'killed')),
    start_time REAL NOT NULL,
    end_time REAL,
    exit_code INTEGER,
    command TEXT,
    git_commit TEXT,
    git_dirty INTEGER,
    python_version TEXT,
    host TEXT,
    user TEXT
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, start_time);
CREATE TABLE params (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    step INTEGER NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX metrics_by_run ON metrics(run_id, key, step);
CREATE TABLE tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE model_versions (
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL CHECK (version >= 1),
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    opset INTEGER,
    signature TEXT NOT NULL,
    run_id TEXT REFERENCES runs(id),
    source TEXT NOT NULL,
    description TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE model_tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version)
);
CREATE TABLE aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version)
);
CREATE TABLE lineage_edges (
    id INTEGER PRIMARY KEY,
    src_kind TEXT NOT NULL,
    src_id TEXT NOT NULL,
    dst_kind TEXT NOT NULL,
    dst_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (src_kind, src_id, dst_kind, dst_id, relation)
);
CREATE INDEX lineage_by_src ON lineage_edges(src_kind, src_id);
CREATE INDEX lineage_by_dst ON lineage_edges(dst_kind, dst_id);
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, _V1),
    (2, schema_variants.SQL),
    (3, schema_packages.SQL),
    (4, schema_deployments.SQL),
    (5, schema_telemetry.SQL),
)


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
    if {v for v, _ in MIGRATIONS} <= applied_versions(conn):
        return applied
    with write_tx(conn):
        # Re-check under the write lock: another process may have migrated meanwhile.
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied REAL NOT NULL)"
        )
        done = applied_versions(conn)
        for version, sql in sorted(MIGRATIONS):
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
