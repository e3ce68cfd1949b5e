"""The workspace store: migrations, SQLite settings, the content-addressed artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amlpkg.errors import IntegrityError, InternalError, InvalidArgumentError, NotFoundError
from amlpkg.settings import load_settings
from amlpkg.store import migrations
from amlpkg.store.artifacts import TEMP_PREFIX, ArtifactStore, sha256_file
from amlpkg.store.db import connect
from amlpkg.store.migrations import current_version, installed_migrations, migrate
from amlpkg.store.workspace import DB_NAME, Workspace, open_workspace

MIGRATIONS = installed_migrations()


def test_migrations_apply_once_and_are_idempotent(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    assert current_version(conn) == 0
    assert migrate(conn) == [v for v, _ in MIGRATIONS]
    assert migrate(conn) == []
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "experiments",
        "runs",
        "params",
        "metrics",
        "tags",
        "artifacts",
        "models",
        "model_versions",
        "model_tags",
        "aliases",
        "lineage_edges",
    } <= tables
    conn.close()


def test_a_migration_missing_below_the_highest_is_still_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace made by a build that lacked a stage gets that stage's tables later."""
    first, *rest = MIGRATIONS
    last = rest[-1]
    conn = connect(tmp_path / "gap.db")
    monkeypatch.setattr(migrations, "installed_migrations", lambda: (first, last))
    assert migrate(conn) == [first[0], last[0]]
    monkeypatch.setattr(migrations, "installed_migrations", lambda: MIGRATIONS)
    assert migrate(conn) == [v for v, _ in rest[:-1]]
    assert migrate(conn) == []
    conn.close()


def test_every_installed_role_brings_its_tables_through_its_entry_point() -> None:
    """Each stage's tables live beside its code; the core finds them by entry point."""
    sql = "\n".join(text for _, text in MIGRATIONS)
    for table in ("lineage_edges", "runs", "model_versions", "variants", "packages",
                  "deployments", "telemetry", "devices"):  # fmt: skip
        assert f"CREATE TABLE {table} (" in sql or f"CREATE TABLE IF NOT EXISTS {table} (" in sql
    assert [v for v, _ in MIGRATIONS] == sorted({v for v, _ in MIGRATIONS})


def test_two_roles_claiming_one_migration_version_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import EntryPoint

    twice = [
        EntryPoint("trainer", "amlpkg.trainer.store.schema", migrations.ENTRY_POINT_GROUP),
        EntryPoint("again", "amlpkg.trainer.store.schema", migrations.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(migrations, "entry_points", lambda group: twice)
    migrations._installed.cache_clear()
    try:
        with pytest.raises(InternalError, match="migration 1 is declared by both"):
            migrations._installed()
    finally:
        migrations._installed.cache_clear()


def test_a_workspace_made_before_the_split_by_role_opens_unchanged(tmp_path: Path) -> None:
    """Old workspaces recorded the lineage edges in migration 1; version 0 is a no-op there."""
    conn = connect(tmp_path / "old.db")
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)"
    )
    conn.execute(migrations.LINEAGE_EDGES_SQL.split(";")[0])
    conn.execute(
        "INSERT INTO lineage_edges VALUES (1, 'run', 'r', 'model_version', 'm:1', 'produced', 0)"
    )
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    applied = migrate(conn)
    assert 0 in applied and 1 not in applied
    assert conn.execute("SELECT COUNT(*) FROM lineage_edges").fetchone()[0] == 1
    conn.close()


def test_reopening_a_workspace_keeps_data_and_schema(home: Path) -> None:
    with open_workspace(home) as ws:
        ws.conn.execute("INSERT INTO experiments (name, created) VALUES ('x', 0)")
    with open_workspace(home) as ws:
        assert ws.conn.execute("SELECT name FROM experiments").fetchall()[0][0] == "x"
        assert current_version(ws.conn) == MIGRATIONS[-1][0]


def test_connection_uses_wal_and_foreign_keys(ws: Workspace) -> None:
    assert ws.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ws.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert (ws.home / DB_NAME).is_file()


def test_home_precedence_explicit_over_env_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path / "env"))
    assert load_settings().home == tmp_path / "env"
    assert load_settings(tmp_path / "flag").home == tmp_path / "flag"
    monkeypatch.delenv("AMLPKG_HOME")
    monkeypatch.chdir(tmp_path)
    assert load_settings().home == tmp_path / ".amlpkg"


def test_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidArgumentError, match="is a file"):
        open_workspace(target)


def test_artifacts_are_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    src = tmp_path / "blob.bin"
    src.write_bytes(b"hello" * 1000)
    digest, size = store.put_file(src)
    again, _ = store.put_bytes(b"hello" * 1000)
    assert digest == again == sha256_file(src)[0]
    assert size == 5000
    path = store.verified_path(digest)
    assert path == tmp_path / "artifacts" / "sha256" / digest[:2] / digest
    assert list(store.iter_digests()) == [digest]
    assert store.read_bytes(digest) == b"hello" * 1000


def test_corrupt_artifact_raises_integrity_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest, _ = store.put_bytes(b"payload")
    path = store.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.verified_path(digest)
    # Storing the same content again repairs the blob.
    store.put_bytes(b"payload")
    assert store.read_bytes(digest) == b"payload"


def test_missing_artifact_and_bad_digest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(NotFoundError):
        store.verified_path("0" * 64)
    with pytest.raises(InvalidArgumentError):
        store.path_for("../../etc/passwd")
    with pytest.raises(NotFoundError):
        store.put_file(tmp_path / "nope")


def test_temp_files_are_not_artifacts(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest, _ = store.put_bytes(b"x")
    stale = tmp_path / "artifacts" / "sha256" / f"{TEMP_PREFIX}abc"
    stale.write_bytes(b"half-written")
    assert list(store.iter_digests()) == [digest]
    assert store.remove_stale_temp_files() == 1
    assert not stale.exists()
