"""The trainer's tables: experiments, runs with their params, metrics, tags and
artifacts, and the model registry (models, versions, tags, aliases).

Registered with the workspace's migration runner through the ``amlpkg.schema``
entry point of this distribution (see :mod:`amlpkg.store.migrations`).
"""

from __future__ import annotations

SQL = """
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
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, SQL),)
