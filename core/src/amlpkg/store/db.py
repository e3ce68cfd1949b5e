"""The workspace database through SQLAlchemy 2 Core: SQLite (embedded) or PostgreSQL (team).

:class:`Database` is what ``Workspace.conn`` holds. A statement run outside a
transaction commits on its own; every multi-statement write goes through
:func:`write_tx`. On SQLite that takes the database write lock up front
(``BEGIN IMMEDIATE``) so that a read-then-write (picking the next model version)
cannot race another process; on PostgreSQL the caller names a ``lock`` (taken as
a transaction-scoped advisory lock) for the same guarantee across processes and
replicas, while unrelated writers proceed in parallel.

Statements are ``text()`` with ``:name`` parameters, or ``?`` placeholders with a
sequence of values (rewritten to named binds: the values are always bound, never
formatted into the SQL). Rows answer by index and by column name.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, Executable, TextClause, create_engine, event, exc, text
from sqlalchemy.engine import make_url

from amlpkg.errors import AmlpkgError, InvalidArgumentError, UnavailableError

Params = Mapping[str, Any] | Sequence[Any] | None
_IMMEDIATE = "amlpkg_immediate"
_QMARK = re.compile(r"\?")


class Record(tuple[Any, ...]):
    """A row: a tuple that also answers ``row["column"]`` and ``keys()`` (so ``dict(row)``)."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> Record:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """Column names, in order."""
        return list(self._index)


class Rows:
    """The fully fetched result of one statement (the connection is already released)."""

    def __init__(self, rows: list[Record], rowcount: int) -> None:
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount

    # Typed Any like sqlite3's cursor: callers know whether their query can come back empty.
    def fetchone(self) -> Any:
        """The next row (a :class:`Record`), or None."""
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[Any]:
        """Every row not fetched yet."""
        rest = self._rows[self._pos :]
        self._pos = len(self._rows)
        return rest

    def scalar(self) -> Any:
        """The first column of the next row, or None."""
        row = self.fetchone()
        return None if row is None else row[0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


@lru_cache(maxsize=1024)
def _qmark_to_named(sql: str) -> TextClause:
    counter = iter(range(1_000_000))
    return text(_QMARK.sub(lambda _: f":_p{next(counter)}", sql))


@lru_cache(maxsize=1024)
def _text(sql: str) -> TextClause:
    # Parsing a statement's binds costs more than running a small query: once per text.
    return text(sql)


def _statement(sql: str | Executable, params: Params) -> tuple[Executable, Any]:
    if not isinstance(sql, str):
        return sql, params
    if params is None or isinstance(params, Mapping):
        return _text(sql), params or {}
    return _qmark_to_named(sql), {f"_p{i}": v for i, v in enumerate(params)}


def masked_url(url: str) -> str:
    """``url`` with its password hidden, safe for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<invalid database URL>"


def database_error(err: exc.SQLAlchemyError, where: str) -> AmlpkgError:
    """A user-facing error for a database failure (no SQL parameters, no credentials)."""
    orig = getattr(err, "orig", None) or err
    reason = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    return UnavailableError(
        f"the workspace database {where} failed: {reason}",
        hint="check that the database server is up and reachable, or retry"
        " (raise AMLPKG_BUSY_TIMEOUT_S when SQLite reports it is locked)",
    )


class Database:
    """An SQLAlchemy engine with the workspace's transaction rules (see the module doc)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._local = threading.local()
        # A statement outside a transaction commits on its own: on PostgreSQL in autocommit
        # (no BEGIN and COMMIT round trips around it), on the same pool. SQLite keeps
        # its explicit BEGIN (see _sqlite_events).
        self._single = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else engine
        )

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside :func:`write_tx`."""
        return getattr(self._local, "conn", None) is not None

    def execute(self, sql: str | Executable, params: Params = None) -> Rows:
        """Run one statement (in the open write transaction, else committing on its own)."""
        statement, bound = _statement(sql, params)
        tx: Connection | None = getattr(self._local, "conn", None)
        try:
            if tx is not None:
                return _fetch(tx.execute(statement, bound))
            with self._single.begin() as conn:
                return _fetch(conn.execute(statement, bound))
        except (exc.OperationalError, exc.InterfaceError) as err:
            # The server is unreachable or SQLite stayed locked: worth a retry, not a bug.
            raise database_error(err, "query") from err

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement for each parameter set (nothing when there are none)."""
        batch = list(rows)
        if not batch:
            return
        first, _ = _statement(sql, batch[0])
        bound = [_statement(sql, p)[1] for p in batch]
        tx: Connection | None = getattr(self._local, "conn", None)
        if tx is not None:
            tx.execute(first, bound)
            return
        with self.engine.begin() as conn:
            conn.execute(first, bound)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """The SQLAlchemy connection of the open write transaction, or a fresh one."""
        tx: Connection | None = getattr(self._local, "conn", None)
        if tx is not None:
            yield tx
            return
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def open_database(url: str, *, busy_timeout_s: float = 60.0) -> Database:
    """Connect to the database at ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``).

    Connects once right away, so a wrong URL or a server that is down fails here
    with a message naming the URL (password hidden), not on the first query.
    """
    shown = masked_url(url)
    try:
        parsed = make_url(url)
    except exc.ArgumentError as err:
        raise InvalidArgumentError(f"not a database URL: {shown}", hint=_URL_HINT) from err
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            engine = create_engine(
                parsed, connect_args={"timeout": busy_timeout_s, "check_same_thread": False}
            )
            _sqlite_events(engine, busy_timeout_s)
        elif backend == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(parsed, connect_args={"connect_timeout": 10})
            _ping_when_idle(engine)
        else:
            raise InvalidArgumentError(f"unsupported workspace store {shown}", hint=_URL_HINT)
    except ModuleNotFoundError as err:
        raise InvalidArgumentError(
            f"the driver for {shown} is not installed ({err.name})",
            hint="pip install 'amlpkg-core[postgres]'",
        ) from err
    try:
        with engine.connect():
            pass
    except exc.SQLAlchemyError as err:
        engine.dispose()
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise UnavailableError(
            f"cannot open the workspace database {shown}: {reason}",
            hint="check that the server is up, the URL and credentials are right,"
            " or for SQLite that the folder exists and is writable",
        ) from err
    return Database(engine)


_URL_HINT = "use a folder, sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"


def _fetch(result: Any) -> Rows:
    if not result.returns_rows:
        return Rows([], result.rowcount)
    index = {str(k): i for i, k in enumerate(result.keys())}
    return Rows([Record(r, index) for r in result.fetchall()], result.rowcount)


IDLE_PING_S = 10.0
"""A pooled PostgreSQL connection idle this long is checked (a round trip) before use."""


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping, but only for connections idle :data:`IDLE_PING_S` or more.

    A connection given back moments ago is alive; pinging it on every checkout cost a
    round trip per statement. One the server dropped while it sat in the pool (a restart,
    an idle timeout) is still replaced before a request sees it.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as err:  # any failure: the pool reconnects and checks out again
            raise exc.DisconnectionError(str(err)) from err


def _sqlite_events(engine: Engine, busy_timeout_s: float) -> None:
    """WAL, foreign keys, a busy timeout; and BEGIN emitted by us (pysqlite's own
    would be deferred to the first DML and skip DDL)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across process crashes in WAL mode; only power loss
        # may drop the last commits, never corrupt the database.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_tx(db: Database, *, lock: str | None = None) -> Iterator[Database]:
    """One write transaction; statements through ``db`` inside the block run in it.

    ``lock`` serialises the writers that name the same key (PostgreSQL advisory
    lock held until commit); SQLite's ``BEGIN IMMEDIATE`` already serialises all.
    A nested call joins the outer transaction.
    """
    if db.in_transaction:
        if lock is not None:
            _advisory_lock(db, lock)
        yield db
        return
    try:
        conn = db.engine.connect().execution_options(**{_IMMEDIATE: True})
    except exc.SQLAlchemyError as err:
        raise database_error(err, "connection") from err
    try:
        try:
            conn.begin()
        except exc.OperationalError as err:
            raise UnavailableError(
                f"the workspace database is locked by another process: {err.orig}",
                hint="retry, or raise AMLPKG_BUSY_TIMEOUT_S",
            ) from err
        db._local.conn = conn
        try:
            if lock is not None:
                _advisory_lock(db, lock)
            yield db
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    finally:
        db._local.conn = None
        conn.close()


def _advisory_lock(db: Database, key: str) -> None:
    if db.dialect == "postgresql":
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))", {"key": key})
