"""Migration 3: ``packages``, the scoring images and folders ``amlpkg build`` made.

One row per build: which model version (and variant) went in, the flavor and
format, where it went (image reference, id, digest after a push, or a path) and
what it weighs. The arrow model_version -> package lives in ``lineage_edges``.
"""

SQL = """
CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    variant_id TEXT,
    flavor TEXT NOT NULL,
    platform TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('image', 'dir', 'tar', 'triton')),
    image_ref TEXT,
    image_id TEXT,
    repo_digest TEXT,
    path TEXT,
    size_bytes INTEGER,
    labels TEXT NOT NULL DEFAULT '{}',
    build_seconds REAL,
    created REAL NOT NULL,
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions(name, version)
);
CREATE INDEX packages_by_model ON packages(model_name, model_version, created)
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = ((3, SQL),)
