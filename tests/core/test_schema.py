"""The workspace schema under Alembic: one branch per role, and workspaces made before it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from sqlalchemy import inspect

from amlpkg.errors import FailedPreconditionError, InternalError
from amlpkg.store import schema_upgrade
from amlpkg.store.schema_upgrade import (
    installed_sources,
    pending_revisions,
    script_directory,
)
from amlpkg.store.workspace import DB_NAME, open_workspace

LEGACY_SQL = (Path(__file__).parent / "legacy_schema.sql").read_text()
ROLE_TABLES = {
    "lineage_edges", "experiments", "runs", "params", "metrics", "tags", "artifacts", "models",
    "model_versions", "model_tags", "aliases", "variants", "packages", "deployments",
    "devices", "telemetry", "server_tokens", "server_audit",
}  # fmt: skip


def _legacy_blocks() -> dict[int, str]:
    blocks: dict[int, str] = {}
    for part in LEGACY_SQL.split("-- version ")[1:]:
        number, _, sql = part.partition("\n")
        blocks[int(number)] = sql
    return blocks


def _legacy_workspace(home: Path, versions: list[int]) -> sqlite3.Connection:
    """A workspace as the hand-written runner left it, with ``versions`` applied."""
    home.mkdir(parents=True)
    conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)"
    )
    blocks = _legacy_blocks()
    for version in versions:
        conn.executescript(blocks[version])
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
    return conn


def test_a_new_workspace_is_at_every_head_with_every_roles_tables(home: Path) -> None:
    with open_workspace(home) as ws, ws.engine.connect() as conn:
        assert pending_revisions(conn) == []
        assert set(inspect(conn).get_table_names()) >= ROLE_TABLES
        assert "schema_migrations" not in inspect(conn).get_table_names()


def test_each_role_is_a_branch_found_through_its_entry_point() -> None:
    modules = {source.module for source in installed_sources()}
    assert {
        "amlpkg.store.migrations",
        "amlpkg.trainer.migrations",
        "amlpkg.packager.migrations",
        "amlpkg.collector.migrations",
        "amlpkg.server.migrations",
    } <= modules
    labels = {label for rev in script_directory().walk_revisions() for label in rev.branch_labels}
    assert {"core", "trainer", "optimize", "build", "deploy", "collector", "server"} <= labels
    # Every legacy version 0-7 has exactly one revision standing for it.
    legacy = {v for source in installed_sources() for v in source.legacy_versions}
    assert legacy == set(range(8))


def test_two_roles_claiming_one_legacy_version_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    twice = [
        EntryPoint("trainer", "amlpkg.trainer.migrations", schema_upgrade.ENTRY_POINT_GROUP),
        EntryPoint("again", "amlpkg.trainer.migrations", schema_upgrade.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(schema_upgrade, "entry_points", lambda group: twice)
    schema_upgrade.installed_sources.cache_clear()
    try:
        with pytest.raises(InternalError, match="legacy migration 1 is claimed by both"):
            schema_upgrade.installed_sources()
    finally:
        schema_upgrade.installed_sources.cache_clear()


def test_a_workspace_of_the_old_runner_is_stamped_upgraded_and_keeps_its_data(
    home: Path,
) -> None:
    from amlpkg.store.lineage_edges import edges_from
    from amlpkg.trainer.registry import get_model_version
    from amlpkg.trainer.store.queries import get_run, list_runs

    conn = _legacy_workspace(home, list(range(8)))
    run = "ab" * 16
    conn.executescript(
        f"""
        INSERT INTO experiments (id, name, created) VALUES (1, 'default', 1.5);
        INSERT INTO runs (id, experiment_id, name, status, start_time, user)
            VALUES ('{run}', 1, 'old', 'completed', 2.5, 'ada');
        INSERT INTO params VALUES ('{run}', 'lr', '0.1');
        INSERT INTO metrics (run_id, key, value, step, timestamp)
            VALUES ('{run}', 'acc', 0.5, 0, 3);
        INSERT INTO metrics (run_id, key, value, step, timestamp)
            VALUES ('{run}', 'acc', 0.9, 1, 4);
        INSERT INTO tags VALUES ('{run}', 'team', 'vision');
        INSERT INTO models VALUES ('net', 5);
        INSERT INTO model_versions VALUES ('net', 1, '{"0" * 64}', 10, 17, '{{}}', '{run}',
            'runs:/{run}/model/net.onnx', NULL, 6);
        INSERT INTO aliases VALUES ('net', 'prod', 1, 7);
        INSERT INTO lineage_edges (src_kind, src_id, dst_kind, dst_id, relation, created)
            VALUES ('run', '{run}', 'model_version', 'net:1', 'produced', 8);
        INSERT INTO devices (id, first_seen, last_seen, last_telemetry) VALUES ('cam', 1, 2, 2);
        """
    )
    conn.close()
    with open_workspace(home) as ws:
        with ws.engine.connect() as sa_conn:
            assert pending_revisions(sa_conn) == []
            assert "schema_migrations" not in inspect(sa_conn).get_table_names()
        record = get_run(ws, run[:6])
        assert (record.name, record.status, record.info.user) == ("old", "completed", "ada")
        assert record.params == {"lr": "0.1"} and record.metrics == {"acc": 0.9}
        assert record.tags == {"team": "vision"}
        assert [r.id for r in list_runs(ws)] == [run]
        version = get_model_version("net@prod", workspace=ws)
        assert (version.version, version.run_id, version.aliases) == (1, run, ["prod"])
        assert [e.dst_id for e in edges_from(ws, ("run", run))] == ["net:1"]
        # New rows go on where the old ones stopped.
        assert ws.conn.execute("SELECT last_telemetry FROM devices").scalar() == 2
    with open_workspace(home) as ws:  # a second open finds nothing to do
        assert get_run(ws, run).metrics == {"acc": 0.9}


def test_an_old_workspace_missing_a_stage_gets_its_tables(home: Path) -> None:
    """A workspace made by a build without the packager and collector gets them now."""
    _legacy_workspace(home, [0, 1, 7]).close()
    with open_workspace(home) as ws, ws.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert {"variants", "packages", "deployments", "devices", "telemetry"} <= tables
        assert pending_revisions(conn) == []


def test_an_old_workspace_made_before_the_split_by_role_opens(home: Path) -> None:
    """Then the trainer's migration 1 made the lineage edges; version 0 was never recorded."""
    conn = _legacy_workspace(home, [])
    conn.executescript(_legacy_blocks()[0] + _legacy_blocks()[1])
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.execute(
        "INSERT INTO lineage_edges VALUES (1, 'run', 'r', 'model_version', 'm:1', 'produced', 0)"
    )
    conn.close()
    with open_workspace(home) as ws:
        assert ws.conn.execute("SELECT COUNT(*) FROM lineage_edges").scalar() == 1


def test_reopening_a_workspace_keeps_data_and_schema(home: Path) -> None:
    with open_workspace(home) as ws:
        ws.conn.execute("INSERT INTO experiments (name, created) VALUES ('x', 0)")
    with open_workspace(home) as ws:
        assert ws.conn.execute("SELECT name FROM experiments").fetchall()[0][0] == "x"
        with ws.engine.connect() as conn:
            assert pending_revisions(conn) == []


ALL_ROLES = list(schema_upgrade.entry_points(group=schema_upgrade.ENTRY_POINT_GROUP))


@contextlib.contextmanager
def _partial_install(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[set[str]], None]]:
    """``only_roles(names)``: pretend only these roles' schema entry points are installed;
    every role is back after the block."""

    def only_roles(names: set[str]) -> None:
        kept = [e for e in ALL_ROLES if e.name in names]
        monkeypatch.setattr(schema_upgrade, "entry_points", lambda group: kept)
        schema_upgrade.installed_sources.cache_clear()
        schema_upgrade.script_directory.cache_clear()

    try:
        yield only_roles
    finally:
        monkeypatch.undo()
        schema_upgrade.installed_sources.cache_clear()
        schema_upgrade.script_directory.cache_clear()


def test_an_install_with_fewer_roles_opens_a_workspace_and_leaves_the_others_alone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run-target image (core and trainer only) opens the workspace the full install
    made: the revisions of roles it lacks stay recorded, their tables untouched."""
    with open_workspace(home) as ws, ws.engine.connect() as conn:
        everything = schema_upgrade.current_revisions(conn)
    with _partial_install(monkeypatch) as only_roles:
        only_roles({"trainer"})
        with open_workspace(home) as ws, ws.engine.connect() as conn:
            assert pending_revisions(conn) == []
            assert schema_upgrade.current_revisions(conn) == everything
            assert {"variants", "deployments", "server_tokens"} <= set(
                inspect(conn).get_table_names()
            )
    with open_workspace(home) as ws, ws.engine.connect() as conn:
        assert pending_revisions(conn) == []


def test_a_partial_install_that_would_have_to_migrate_is_refused_clearly(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made by core + trainer + server, opened by an install that adds the packager's
    roles but lacks the server's: its tables would need making while Alembic's record
    holds a revision it cannot read, so it says what to do; the full install then
    upgrades it."""
    with _partial_install(monkeypatch) as only_roles:
        only_roles({"trainer", "server"})
        with open_workspace(home):
            pass
        only_roles({"trainer", "collector", "packager"})
        with pytest.raises(FailedPreconditionError, match="roles not installed here") as caught:
            open_workspace(home).__enter__()
        assert "server_0001" in str(caught.value) and "optimize_0001" in str(caught.value)
        assert "an install of every role" in (caught.value.hint or "")
    with open_workspace(home) as ws, ws.engine.connect() as conn:
        assert pending_revisions(conn) == []
        assert set(inspect(conn).get_table_names()) >= ROLE_TABLES


def test_a_partial_install_without_a_record_of_the_branches_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_workspace(home) as ws, ws.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM schema_branches")  # as a workspace of before
    with _partial_install(monkeypatch) as only_roles:
        only_roles({"trainer"})
        with pytest.raises(FailedPreconditionError, match="no record of where"):
            open_workspace(home).__enter__()
    with open_workspace(home) as ws, ws.engine.connect() as conn:  # the full install records it
        rows = dict(conn.exec_driver_sql("SELECT branch, revision FROM schema_branches").all())
    assert rows["trainer"] == "trainer_0002" and rows["core"] == "core_0002"
