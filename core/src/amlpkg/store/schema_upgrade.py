"""Alembic migrations of the workspace database, for SQLite and PostgreSQL alike.

Each role owns its tables and ships its Alembic revisions beside its code, in a
``migrations`` package announced by its distribution's ``amlpkg.schema`` entry
point (the core's own, the lineage edges, is :mod:`amlpkg.store.migrations`).
Every role is one Alembic branch (``branch_labels``) whose first revision names
the revisions it builds on in ``depends_on``; opening a workspace upgrades to all
heads, so a role installed later gets its tables then.

Workspaces made by the hand-written runner that came before (table
``schema_migrations`` with versions 0-7) are stamped once at the revisions those
versions match (each ``migrations`` package maps them in ``LEGACY_VERSIONS``),
then upgraded like any other; their data stays.

The upgrade runs in one transaction under the write lock (SQLite ``BEGIN
IMMEDIATE``, a PostgreSQL advisory lock), so processes opening a new workspace
at once migrate it once, and a crash leaves the previous schema.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy import exc as sa_exc

from amlpkg.errors import InternalError
from amlpkg.store.db import Database, database_error, write_tx

ENTRY_POINT_GROUP = "amlpkg.schema"
CORE_MIGRATIONS = "amlpkg.store.migrations"
LEGACY_TABLE = "schema_migrations"
_LOCK = "amlpkg:schema"


@dataclass(frozen=True)
class SchemaSource:
    """One role's revisions: where they live and the legacy versions they replace."""

    module: str
    folder: Path
    legacy_versions: dict[int, str]


def _source(module_name: str) -> SchemaSource:
    module = importlib.import_module(module_name)
    return SchemaSource(
        module_name, Path(next(iter(module.__path__))), dict(module.LEGACY_VERSIONS)
    )


@cache
def installed_sources() -> tuple[SchemaSource, ...]:
    """The core's revisions and those of every installed role."""
    sources = [_source(CORE_MIGRATIONS)]
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        sources.append(_source(entry.value))
    legacy: dict[int, str] = {}
    for source in sources:
        for version in source.legacy_versions:
            if version in legacy:
                raise InternalError(
                    f"legacy migration {version} is claimed by both {legacy[version]} and"
                    f" {source.module}",
                    hint="reinstall amlpkg's distributions from one release",
                )
            legacy[version] = source.module
    return tuple(sources)


@cache
def script_directory() -> ScriptDirectory:
    """Alembic's view of every installed revision (one branch per role)."""
    sources = installed_sources()
    return ScriptDirectory(
        sources[0].folder, version_locations=[str(source.folder) for source in sources]
    )


def current_revisions(conn: Connection) -> set[str]:
    """The revisions the database is stamped at (empty for a new one).

    Alembic keeps only the newest of each line, counting ``depends_on``: a
    revision another one depends on is implied by it.
    """
    return set(MigrationContext.configure(conn).get_current_heads())


def pending_revisions(conn: Connection) -> list[str]:
    """The revisions an upgrade would apply now, in order (empty when up to date)."""
    current = tuple(current_revisions(conn))
    steps = script_directory()._upgrade_revs("heads", current)  # type: ignore[arg-type]
    return [step.revision.revision for step in steps]


def upgrade(db: Database) -> None:
    """Bring the database to every installed head (stamping a legacy workspace first)."""
    try:
        with db.connection() as conn:
            if not pending_revisions(conn):
                return  # the common case: one cheap read, no lock
        with write_tx(db, lock=_LOCK), db.connection() as conn:
            # Re-read under the lock: another process may have migrated meanwhile.
            if not current_revisions(conn) and inspect(conn).has_table(LEGACY_TABLE):
                _stamp_legacy(conn)
            _run_upgrade(conn)
    except sa_exc.SQLAlchemyError as err:
        raise database_error(err, f"schema upgrade ({db.url})") from err


def _run_upgrade(conn: Connection) -> None:
    script = script_directory()

    def steps(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs("heads", rev)

    env = EnvironmentContext(Config(), script, fn=steps)
    with env:
        env.configure(connection=conn, transaction_per_migration=False)
        env.run_migrations()


def _stamp_legacy(conn: Connection) -> None:
    """Stamp the revisions the old runner's recorded versions stand for, then drop its table."""
    recorded = {int(v) for (v,) in conn.exec_driver_sql(f"SELECT version FROM {LEGACY_TABLE}")}
    # The runner created the lineage edges in the trainer's migration 1 before version 0
    # existed: the table itself says whether that part of the schema is there.
    if inspect(conn).has_table("lineage_edges"):
        recorded.add(0)
    mapping: dict[int, str] = {}
    for source in installed_sources():
        mapping.update(source.legacy_versions)
    unknown = recorded - set(mapping)
    if unknown:
        raise InternalError(
            f"the workspace has schema versions {sorted(unknown)} that no installed role knows",
            hint="install the amlpkg distributions that made this workspace",
        )
    script = script_directory()
    revisions = {mapping[v] for v in recorded}
    # Keep only the newest revision of each branch: stamping its ancestors too is redundant.
    ancestors = {
        r.revision
        for rev in revisions
        for r in script.iterate_revisions(rev, "base")
        if r.revision != rev
    }
    context = MigrationContext.configure(conn)
    context.stamp(script, tuple(sorted(revisions - ancestors)))  # type: ignore[arg-type]
    conn.exec_driver_sql(f"DROP TABLE {LEGACY_TABLE}")
