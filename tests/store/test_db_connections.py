"""PostgreSQL connections: a pooled one the server dropped is replaced before use, and a
statement outside a transaction commits on its own without a BEGIN round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from amlpkg.store import db as store_db
from amlpkg.store.db import write_tx
from amlpkg.store.workspace import Workspace, open_workspace
from tests.store.conftest import TeamStore


@pytest.fixture
def pg(team_store: TeamStore, tmp_path: Path) -> Iterator[Workspace]:
    with open_workspace(tmp_path / "ws", store=team_store.store) as ws:
        yield ws


def _backend_pid(ws: Workspace) -> int:
    return int(ws.conn.execute("SELECT pg_backend_pid()").scalar())


def test_an_idle_connection_the_server_dropped_is_replaced(
    pg: Workspace, team_store: TeamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(pg)
    assert _backend_pid(pg) == first  # the pool hands the same connection back
    # Drop it from a connection of our own, as a server restart would.
    with psycopg.connect(team_store.store.replace("+psycopg", ""), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (first,))
    monkeypatch.setattr(store_db, "IDLE_PING_S", 0.0)  # it has been idle "long enough"
    assert _backend_pid(pg) != first  # pinged, found dead, replaced: no error reaches us
    with write_tx(pg.conn) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert pg.conn.execute("SELECT x FROM t").scalar() == 1


def test_a_statement_outside_a_transaction_runs_in_autocommit(pg: Workspace) -> None:
    states: list[str] = []

    @event.listens_for(pg.engine, "after_cursor_execute")
    def _seen(conn: Any, *_args: Any) -> None:
        states.append(conn.connection.dbapi_connection.info.transaction_status.name)

    pg.conn.execute("CREATE TABLE u (x INTEGER PRIMARY KEY)")
    pg.conn.execute("INSERT INTO u VALUES (1)")
    assert states == ["IDLE", "IDLE"]  # no transaction was open around them
    with write_tx(pg.conn) as conn:
        conn.execute("SELECT 1")
    assert states[-1] == "INTRANS"  # a write transaction is one
    with pytest.raises(Exception, match="duplicate key"), write_tx(pg.conn) as conn:
        conn.execute("INSERT INTO u VALUES (2)")
        conn.execute("INSERT INTO u VALUES (1)")
    assert [r[0] for r in pg.conn.execute("SELECT x FROM u ORDER BY x")] == [1]
