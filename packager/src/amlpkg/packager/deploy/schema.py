"""Migration 4: one row per deployment apply (issue 5).

A deployment NAME has revisions 1, 2, ...; each ``amlpkg deploy`` (or rollback)
adds one row, so the table is the history of what ran where. ``config`` holds the
options the deploy was given, ``state`` what the target needs to find it again
(pids, ports, object names), both as JSON text.
"""

from __future__ import annotations

SQL = """
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision >= 1),
    target TEXT NOT NULL,
    model TEXT,
    package TEXT,
    image TEXT,
    image_digest TEXT,
    endpoint_http TEXT,
    endpoint_grpc TEXT,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'stopped')),
    reason TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (name, revision)
);
CREATE INDEX deployments_by_name ON deployments(name, revision)
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = ((4, SQL),)
