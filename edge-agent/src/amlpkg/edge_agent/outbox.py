"""Store-and-forward: a bounded on-disk queue of telemetry messages that survives restarts.

Messages get a sequence number that only grows (SQLite ``AUTOINCREMENT`` never
reuses a number, even after the rows are deleted) and a globally unique message id
``<device>:<seq>``, so the collector can drop the duplicates that at-least-once
delivery produces. A message leaves the queue only when :meth:`Outbox.ack` is called
after the hub acknowledged it. When the queue passes its byte cap the oldest
messages are dropped, and the drops are counted on disk so they can be reported.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError, UnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued message: its order, its unique id and the JSON body to send."""

    seq: int
    message_id: str
    created: float
    body: bytes

    def payload(self) -> dict[str, Any]:
        """The decoded JSON body."""
        data: dict[str, Any] = json.loads(self.body)
        return data


class Outbox:
    """A SQLite (WAL) queue bounded in bytes with a counted drop-oldest policy.

    Thread-safe: the agent's producer (telemetry timer) and its forwarder share it.
    """

    def __init__(self, path: Path, device_id: str, *, max_bytes: int = 16 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            raise InvalidArgumentError(
                f"outbox cap must be positive, got {max_bytes}",
                hint="set the outbox size cap in bytes, e.g. 16777216",
            )
        self.path = Path(path)
        self.device_id = device_id
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            # Bound the files, not just the rows: freed pages go back to the file system
            # (incremental vacuum) and the write-ahead log is checkpointed and truncated
            # at a size that follows the cap, instead of growing to SQLite's 4 MB default.
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._conn.execute("PRAGMA journal_mode = WAL")
            pages = max(8, min(1000, max_bytes // 4096))
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            self._conn.execute(f"PRAGMA journal_size_limit = {max(64 * 1024, max_bytes)}")
            # FULL: a telemetry message acknowledged into the queue survives a power cut.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(_SCHEMA)
            if self._conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                self._conn.execute("VACUUM")  # an outbox made before: convert it once
        except (OSError, sqlite3.Error) as exc:
            raise UnavailableError(
                f"cannot open the telemetry outbox {self.path}: {exc}",
                hint="point the agent's --state-dir at a writable folder with free space",
            ) from exc

    def close(self) -> None:
        """Close the database (the queue stays on disk)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, payload: Mapping[str, Any]) -> OutboxMessage:
        """Queue one message; drop the oldest ones (counted) if the cap is passed."""
        try:
            return self._append(payload)
        except sqlite3.Error as exc:  # a full disk or a broken file: say so, never crash
            raise UnavailableError(
                f"cannot queue telemetry in {self.path}: {exc}",
                hint="free disk space on the device or lower the outbox cap",
            ) from exc

    def _append(self, payload: Mapping[str, Any]) -> OutboxMessage:
        with self._lock:
            message = self._insert(payload)
            self._shrink_log()
        return message

    def _insert(self, payload: Mapping[str, Any]) -> OutboxMessage:
        with self._tx():
            now = time.time()
            # Reserve the sequence number first: the id and the body both carry it.
            cur = self._conn.execute(
                "INSERT INTO outbox (message_id, created, body, size) VALUES (?, ?, x'', 0)",
                (f"pending:{now}:{threading.get_ident()}", now),
            )
            seq = int(cur.lastrowid or 0)
            message_id = f"{self.device_id}:{seq}"
            body = json.dumps(
                {"message_id": message_id, "seq": seq, "device": self.device_id, **payload},
                separators=(",", ":"),
                default=str,
            ).encode()
            if len(body) > self.max_bytes:
                raise InvalidArgumentError(
                    f"a telemetry message of {len(body)} bytes exceeds the outbox cap "
                    f"of {self.max_bytes} bytes",
                    hint="raise the outbox cap or send smaller telemetry messages",
                )
            self._conn.execute(
                "UPDATE outbox SET message_id = ?, body = ?, size = ? WHERE seq = ?",
                (message_id, body, len(body), seq),
            )
            self._enforce_cap()
        return OutboxMessage(seq, message_id, now, body)

    def _enforce_cap(self) -> None:
        total = int(self._conn.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0])
        dropped = 0
        while total > self.max_bytes:
            seq, size = self._conn.execute(
                "SELECT seq, size FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
            self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            total -= int(size)
            dropped += 1
        if dropped:
            self._conn.execute("PRAGMA incremental_vacuum")
            self._conn.execute(
                "INSERT INTO outbox_counters (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = outbox_counters.value + excluded.value",
                (dropped,),
            )

    def disk_bytes(self) -> int:
        """What the queue takes on disk now: the database and its write-ahead log."""
        return sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )

    def _shrink_log(self) -> None:
        # Checkpoint and truncate the log once it outgrows the cap; a reader holding an
        # old snapshot makes this a no-op, retried at the next acknowledgement.
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and wal.stat().st_size > max(64 * 1024, self.max_bytes):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def peek(self, limit: int = 100) -> list[OutboxMessage]:
        """The oldest ``limit`` messages, in order, still queued."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, message_id, created, body FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [OutboxMessage(int(s), str(m), float(c), bytes(b)) for s, m, c, b in rows]

    def ack(self, seq: int) -> None:
        """The hub acknowledged every message up to ``seq``: remove them."""
        with self._lock:
            with self._tx():
                self._conn.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
                self._conn.execute("PRAGMA incremental_vacuum")
            self._shrink_log()

    @property
    def dropped(self) -> int:
        """Messages dropped by the size cap since the queue was created."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM outbox_counters WHERE name = 'dropped'"
            ).fetchone()
        return int(row[0]) if row else 0

    def pending(self) -> tuple[int, int]:
        """(messages, bytes) waiting to be sent."""
        with self._lock:
            count, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox"
            ).fetchone()
        return int(count), int(size)

    def _tx(self) -> _Tx:
        return _Tx(self._conn)


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on a connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
