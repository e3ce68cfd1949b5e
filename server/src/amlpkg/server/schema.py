"""Migration 7: the server's tables: API tokens and the audit log.

A token is stored only as the sha256 of its text: the text is shown once when it
is made and never kept. Tokens are long random strings, so a plain digest is
enough (no password hashing: nothing to guess). The tokens of a workspace live in
its database, so a role is a role in that workspace. Plain types only, so the
same DDL runs on PostgreSQL.
"""

from __future__ import annotations

SQL = """
CREATE TABLE server_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('reader', 'contributor', 'owner')),
    token_sha256 TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    expires DOUBLE PRECISION,
    revoked DOUBLE PRECISION
);
CREATE TABLE server_audit (
    id INTEGER PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX server_audit_by_time ON server_audit(time)
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = ((7, SQL),)
