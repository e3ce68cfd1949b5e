"""The workspace store: SQLite settings, settings precedence, the content-addressed artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amlpkg.errors import IntegrityError, InvalidArgumentError, NotFoundError
from amlpkg.settings import load_settings
from amlpkg.store.artifacts import TEMP_PREFIX, ArtifactStore, sha256_file
from amlpkg.store.workspace import DB_NAME, Workspace, open_workspace


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
