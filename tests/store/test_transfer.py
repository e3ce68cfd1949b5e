"""`export_workspace` / `import_workspace`: an embedded workspace into PostgreSQL + S3 and back.

Real quickstart content (runs, metrics, a registered model with an alias, lineage,
artifacts) makes the round trip with every id kept; a tampered archive and a
non-empty target are refused and leave the target as it was.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from amlpkg.errors import FailedPreconditionError, IntegrityError, InvalidArgumentError
from amlpkg.store.lineage_edges import edges_from
from amlpkg.store.transfer import export_workspace, import_workspace
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.quickstart import QuickstartResult, run_quickstart
from amlpkg.trainer.store import queries
from tests.store.conftest import TeamStore


def _dump(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the schema's bookkeeping), in a backend-independent
    order."""
    meta = MetaData()
    with ws.engine.connect() as conn:
        meta.reflect(bind=conn)
        return {
            table.name: sorted((tuple(r) for r in conn.execute(select(table))), key=str)
            for table in meta.sorted_tables
            if table.name not in ("alembic_version", "schema_branches")
        }


def _blobs(ws: Workspace) -> dict[str, bytes]:
    return {d: ws.artifacts.read_bytes(d) for d in ws.artifacts.iter_digests()}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> QuickstartResult:
    home = tmp_path_factory.mktemp("quickstart") / "ws"
    return run_quickstart(home, folds=2)


def _assert_same(src: Workspace, dst: Workspace, result: QuickstartResult) -> None:
    rows = _dump(src)
    assert {t: len(r) for t, r in rows.items() if r}, "the quickstart wrote rows"
    assert _dump(dst) == rows
    assert _blobs(dst) == _blobs(src) != {}
    run = queries.get_run(dst, result.run_id)
    assert run.metrics == queries.get_run(src, result.run_id).metrics != {}
    assert edges_from(dst, ("run", result.run_id)) == edges_from(src, ("run", result.run_id))


def test_embedded_to_team_and_back(
    source: QuickstartResult, team_store: TeamStore, tmp_path: Path
) -> None:
    archive = tmp_path / "ws.tar"
    with open_workspace(source.home) as src:
        exported = export_workspace(src, archive)
        assert exported.tables["runs"] >= 1 and exported.blobs >= 1
        with open_workspace(
            tmp_path / "team-cache", store=team_store.store, artifacts=team_store.artifacts
        ) as team:
            imported = import_workspace(team, archive)
            assert imported.tables == exported.tables
            _assert_same(src, team, source)
            # The team workspace keeps working: new rows get fresh ids after the imported ones.
            from amlpkg.trainer.store import runs as store_runs

            store_runs.log_metrics(team, store_runs.create_run(team, "after", "x"), {"m": 1.0}, 0)

            back = tmp_path / "back.tar"
            with open_workspace(
                tmp_path / "team-cache2", store=team_store.store, artifacts=team_store.artifacts
            ) as again:
                export_workspace(again, back)
        with open_workspace(tmp_path / "home-again") as home_again:
            import_workspace(home_again, back)
            expected = _dump(src)
            got = _dump(home_again)
            grown = ("runs", "metrics", "latest_metrics", "experiments")  # the run made after
            assert {t: r for t, r in got.items() if t not in grown} == {
                t: r for t, r in expected.items() if t not in grown
            }
            assert set(expected["runs"]) < set(got["runs"])
            assert _blobs(home_again) == _blobs(src)


def test_sqlite_round_trip(source: QuickstartResult, tmp_path: Path) -> None:
    archive = tmp_path / "ws.tar"
    with open_workspace(source.home) as src, open_workspace(tmp_path / "copy") as dst:
        export_workspace(src, archive)
        import_workspace(dst, archive)
        _assert_same(src, dst, source)


@pytest.fixture
def archive(source: QuickstartResult, tmp_path: Path) -> Path:
    """The quickstart workspace exported to ``ws.tar``."""
    path = tmp_path / "ws.tar"
    with open_workspace(source.home) as src:
        export_workspace(src, path)
    return path


def _assert_refused(archive: Path, target: Path, error: type[Exception], match: str) -> None:
    """Importing ``archive`` into a new workspace at ``target`` fails and leaves it empty."""
    with open_workspace(target) as dst:
        with pytest.raises(error, match=match):
            import_workspace(dst, archive)
        assert all(not rows for rows in _dump(dst).values())
        assert list(dst.artifacts.iter_digests()) == []


def _rewrite(archive: Path, out: Path, change: Any) -> None:
    """Copy ``archive`` to ``out``, passing each (TarInfo, bytes) through ``change``."""
    with tarfile.open(archive) as tin, tarfile.open(out, "w") as tout:
        for member in tin:
            handle = tin.extractfile(member)
            assert handle is not None
            for info, data in change(member, handle.read()):
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))


def test_tampered_archive_is_refused(archive: Path, tmp_path: Path) -> None:
    def flip(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name.startswith("blobs/") and not getattr(flip, "done", False):
            flip.done = True  # type: ignore[attr-defined]
            data = bytes([data[0] ^ 1]) + data[1:]
        return [(info, data)]

    tampered = tmp_path / "tampered.tar"
    _rewrite(archive, tampered, flip)
    _assert_refused(tampered, tmp_path / "target", IntegrityError, "tampered")


@pytest.mark.parametrize(
    "name", ["../evil", "/etc/passwd", "tables/../../x.jsonl", "blobs/sha256/link"]
)
def test_unexpected_members_are_refused(archive: Path, tmp_path: Path, name: str) -> None:
    def add(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        out = [(info, data)]
        if info.name == "manifest.json":
            out.append((tarfile.TarInfo(name), b"x"))
        return out

    evil = tmp_path / "evil.tar"
    _rewrite(archive, evil, add)
    refusal = "not a valid workspace archive"
    _assert_refused(evil, tmp_path / "target", InvalidArgumentError, refusal)


def test_row_count_mismatch_rolls_back(archive: Path, tmp_path: Path) -> None:
    def lie(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name == "manifest.json":
            doc = json.loads(data)
            doc["tables"][-1]["rows"] += 1
            data = json.dumps(doc).encode()
        return [(info, data)]

    bad = tmp_path / "bad.tar"
    _rewrite(archive, bad, lie)
    _assert_refused(bad, tmp_path / "target", InvalidArgumentError, "the manifest says")


def test_non_empty_target_is_refused(archive: Path, tmp_path: Path) -> None:
    with open_workspace(tmp_path / "copy") as dst:
        import_workspace(dst, archive)
        before = _dump(dst)
        with pytest.raises(FailedPreconditionError, match="not empty"):
            import_workspace(dst, archive)
        assert _dump(dst) == before


def test_cli_export_and_import(source: QuickstartResult, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from amlpkg.cli.app import app

    archive = tmp_path / "ws.tar"
    target = tmp_path / "copy"
    runner = CliRunner()
    done = runner.invoke(app, ["workspace", "export", str(archive), "--home", str(source.home)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        app, ["workspace", "import", str(archive), "--home", str(target), "--json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["tables"]["runs"] >= 1
    with open_workspace(source.home) as src, open_workspace(target) as dst:
        _assert_same(src, dst, source)
    again = runner.invoke(app, ["workspace", "import", str(archive), "--home", str(target)])
    assert again.exit_code != 0
    assert isinstance(again.exception, FailedPreconditionError)
