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
from sqlalchemy import Connection, inspect, text
from sqlalchemy import exc as sa_exc

from amlpkg.errors import FailedPreconditionError, InternalError
from amlpkg.store.db import Database, database_error, write_tx

ENTRY_POINT_GROUP = "amlpkg.schema"
CORE_MIGRATIONS = "amlpkg.store.migrations"
LEGACY_TABLE = "schema_migrations"
BRANCHES_TABLE = "schema_branches"
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


def _known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in script_directory().walk_revisions())


def _upgrade_steps(current: tuple[str, ...]) -> Any:
    # The step list Alembic's own ``upgrade`` command builds (``ScriptDirectory`` offers
    # it under this name only; Alembic's cookbook uses it the same way).
    return script_directory()._upgrade_revs("heads", current)  # type: ignore[arg-type]


def pending_revisions(conn: Connection) -> list[str]:
    """The revisions an upgrade would apply now, in order (empty when up to date)."""
    current = current_revisions(conn)
    unknown = current - _known_revisions()
    if unknown:
        current = _known_heads(conn, unknown)
    return [step.revision.revision for step in _upgrade_steps(tuple(current))]


def _ancestors(revisions: set[str]) -> set[str]:
    """Every revision ``revisions`` build on (down revisions and dependencies)."""
    script = script_directory()
    return {
        r.revision
        for rev in revisions
        for r in script.iterate_revisions(rev, "base")
        if r.revision != rev
    }


def branch_heads(current: set[str]) -> dict[str, str]:
    """Branch label -> its applied head, for a database at ``current`` (all known here)."""
    script = script_directory()
    applied = current | _ancestors(current)
    below: set[str] = set()
    for rev in applied:
        down = script.get_revision(rev).down_revision
        below |= {down} if isinstance(down, str) else set(down or ())
    heads: dict[str, str] = {}
    for rev in sorted(applied - below):
        for label in script.get_revision(rev).branch_labels:
            heads[label] = rev
    return heads


def _recorded_branches(conn: Connection) -> dict[str, str]:
    if not inspect(conn).has_table(BRANCHES_TABLE):
        return {}
    rows = conn.exec_driver_sql(f"SELECT branch, revision FROM {BRANCHES_TABLE}")
    return {str(branch): str(revision) for branch, revision in rows}


def _record_branches(conn: Connection) -> None:
    """Write each branch's applied head (an install with every role recorded knows them)."""
    current = current_revisions(conn)
    if current - _known_revisions():
        return  # a partial install cannot know the other roles' heads: keep the record
    heads = branch_heads(current)
    if _recorded_branches(conn) == heads:
        return
    conn.execute(text(f"DELETE FROM {BRANCHES_TABLE}"))
    insert = text(f"INSERT INTO {BRANCHES_TABLE} (branch, revision) VALUES (:branch, :rev)")
    for branch, revision in sorted(heads.items()):
        conn.execute(insert, {"branch": branch, "rev": revision})


def _known_heads(conn: Connection, unknown: set[str]) -> set[str]:
    """Where this install's roles stand in a workspace that also holds revisions of roles
    not installed here (a run target's image carries core and trainer only)."""
    recorded = _recorded_branches(conn)
    known = {rev for rev in recorded.values() if rev in _known_revisions()}
    if not known:
        raise FailedPreconditionError(
            f"the workspace holds schema revisions of amlpkg roles not installed here "
            f"({', '.join(sorted(unknown))}) and no record of where this install's roles stand",
            hint="open it once with an install of every role that used it (e.g. `amlpkg "
            "runs list` where the full amlpkg is installed), then again here",
        )
    return known - _ancestors(known)


def upgrade(db: Database) -> None:
    """Bring the database to every installed head (stamping a legacy workspace first).

    A workspace that also holds revisions of roles not installed here opens as it is
    when this install's roles are up to date in it, and is refused when they are not
    (their upgrade would have to move Alembic's record of the other roles' revisions).
    """
    try:
        with db.connection() as conn:
            current = current_revisions(conn)
            unknown = current - _known_revisions()
            if unknown:
                steps = _upgrade_steps(tuple(_known_heads(conn, unknown)))
                if steps:
                    raise FailedPreconditionError(
                        "the workspace needs schema changes for the amlpkg roles installed "
                        f"here ({', '.join(s.revision.revision for s in steps)}) and holds "
                        f"revisions of roles not installed here ({', '.join(sorted(unknown))})",
                        hint="upgrade it with an install of every role that used it, then "
                        "open it here",
                    )
                return
            if not _upgrade_steps(tuple(current)) and _recorded_branches(conn) == branch_heads(
                current
            ):
                return  # the common case: cheap reads, no lock
        with write_tx(db, lock=_LOCK), db.connection() as conn:
            # Re-read under the lock: another process may have migrated meanwhile.
            if not current_revisions(conn) and inspect(conn).has_table(LEGACY_TABLE):
                _stamp_legacy(conn)
            _run_upgrade(conn)
            _record_branches(conn)
    except sa_exc.SQLAlchemyError as err:
        raise database_error(err, f"schema upgrade ({db.url})") from err


def _run_upgrade(conn: Connection) -> None:
    def steps(rev: Any, _context: Any) -> Any:
        return _upgrade_steps(rev if isinstance(rev, tuple) else tuple(rev or ()))

    env = EnvironmentContext(Config(), script_directory(), fn=steps)
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
    context = MigrationContext.configure(conn)
    context.stamp(script, tuple(sorted(revisions - _ancestors(revisions))))  # type: ignore[arg-type]
    conn.exec_driver_sql(f"DROP TABLE {LEGACY_TABLE}")
