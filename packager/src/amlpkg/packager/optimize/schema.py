"""Migration 2: optimized variants of model versions (``amlpkg optimize``).

One row per variant made: its file (in the content store), the target and
precision it is for, the execution providers to serve it with, how it was made
(``recipe``), what was measured, how accurate it is against the original,
whether it passed the limits (``accepted`` + ``reason``) and whether
``--auto`` chose it for its target.
"""

SQL = """
CREATE TABLE variants (
    id TEXT PRIMARY KEY,
    parent_name TEXT NOT NULL,
    parent_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    precision TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    providers TEXT NOT NULL,
    recipe TEXT NOT NULL,
    measurements TEXT NOT NULL,
    accuracy TEXT NOT NULL,
    accepted INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    reason TEXT NOT NULL,
    chosen INTEGER NOT NULL DEFAULT 0 CHECK (chosen IN (0, 1)),
    created REAL NOT NULL,
    FOREIGN KEY (parent_name, parent_version) REFERENCES model_versions(name, version)
);
CREATE INDEX variants_by_parent ON variants(parent_name, parent_version, target, created);
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = ((2, SQL),)
