"""Params, metrics and tags on their way to a server: a disk spool and its sender thread.

A training loop's ``log_metric`` only appends one JSON line to a small file of
its own (``<cache>/spool/<run>-<pid>-<nonce>.jsonl``) and returns: no network on
the caller's thread. A background thread reads the lines past a cursor, sends
them in batches (``POST /runs/RUN/log-batch``), and moves the cursor (a second
small file) only once the server has stored them. A refused connection or a 5xx
is retried with exponential backoff and jitter, for as long as the process
lives; ``flush``/``close`` wait for it with a deadline. What is still unsent at
exit stays on disk, and :func:`resend_leftovers` sends it with the next run.

Bounded: a spool stops growing at ``max_bytes`` (values past it are dropped and
counted, with one warning), a batch carries at most ``_BATCH_BYTES`` of lines.
No token is ever written here: the header line names the server and the run only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amlpkg.errors import (
    AmlpkgError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
)
from amlpkg.processes import pid_alive
from amlpkg.trainer.remote.client import TeamClient, backoff

log = logging.getLogger(__name__)
# {"p": {k: v}, "m": [[key, value, step]], "t": {k: v}}, or {"e": [status, exit_code]}:
# the end of the run, sent after everything before it.
Record = dict[str, Any]
_BATCH_BYTES = 512 * 1024  # well under the server's 1 MiB JSON limit
_BATCH_METRICS = 5000  # the server takes 10,000 per call
_INTERVAL_S = 0.5
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class Spool:
    """One run's append-only file of records and the offset sent so far."""

    def __init__(self, path: Path, *, sent: int, max_bytes: int) -> None:
        self.path = path
        self.cursor = path.with_suffix(".sent")
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        self._out = path.open("a", encoding="utf-8")
        self._size = path.stat().st_size
        self._sent = sent

    @classmethod
    def create(cls, folder: Path, url: str, run_id: str, max_bytes: int) -> Spool:
        """A new spool for ``run_id`` of this process; its header names the server and run."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{run_id}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        header = json.dumps({"url": url, "run": run_id}) + "\n"
        path.write_text(header, encoding="utf-8")
        return cls(path, sent=len(header.encode()), max_bytes=max_bytes)

    @classmethod
    def reopen(cls, path: Path) -> Spool:
        """A spool another process left, its cursor where that process got to."""
        with path.open("rb") as source:
            header = len(source.readline())
        cursor = path.with_suffix(".sent")
        text = cursor.read_text() if cursor.exists() else ""
        sent = max(header, int(text)) if text.strip().isdigit() else header
        return cls(path, sent=sent, max_bytes=path.stat().st_size)

    def append(self, record: Record) -> bool:
        """Add one record (flushed to the OS, not fsynced: a crash of this process keeps it)."""
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        data = line.encode()
        with self._lock:
            if self._size + len(data) > self.max_bytes:
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("metric spool %s is full; values are dropped", self.path.name)
                return False
            self._out.write(line)
            self._out.flush()
            self._size += len(data)
        return True

    def pending(self) -> bool:
        """Whether records wait to be sent."""
        with self._lock:
            return self._sent < self._size

    def read_batch(self) -> tuple[list[Record], int]:
        """The next records past the cursor (bounded) and the offset after them."""
        with self._lock:
            start, end = self._sent, self._size
        records: list[Record] = []
        metrics = 0
        offset = start
        with self.path.open("rb") as source:
            source.seek(start)
            while offset < end:
                line = source.readline()
                if not line.endswith(b"\n"):
                    break  # a line still being written
                record = json.loads(line)
                count = len(record.get("m", ()))
                if records and ("e" in record or "e" in records[-1]):
                    break  # an end goes alone, after the values before it
                if records and (
                    offset - start + len(line) > _BATCH_BYTES or metrics + count > _BATCH_METRICS
                ):
                    break
                records.append(record)
                metrics += count
                offset += len(line)
        return records, offset

    def commit(self, offset: int) -> None:
        """The server stored everything before ``offset``: move the cursor there."""
        with self._lock:
            self._sent = offset
        self.cursor.write_text(str(offset))

    def remove(self) -> None:
        """Delete the spool once everything in it was sent."""
        with self._lock:
            self._out.close()
        self.path.unlink(missing_ok=True)
        self.cursor.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the file, keeping it for a later resend."""
        with self._lock:
            self._out.close()


def merge(records: list[Record]) -> dict[str, Any]:
    """Records as one log-batch body (params and tags: the last value of a key wins)."""
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    metrics: list[dict[str, Any]] = []
    for record in records:
        params.update(record.get("p", {}))
        tags.update(record.get("t", {}))
        metrics += [{"key": k, "value": v, "step": s} for k, v, s in record.get("m", ())]
    return {"params": params, "metrics": metrics, "tags": tags}


class Sender:
    """The thread that empties a :class:`Spool` into the server."""

    def __init__(self, spool: Spool, run_id: str, client_factory: Callable[[], TeamClient]):
        self.spool = spool
        self.run_id = run_id
        self._client_factory = client_factory
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self.parked: AmlpkgError | None = None  # a refusal retrying cannot fix (token)
        self._thread = threading.Thread(
            target=self._loop, name=f"amlpkg-spool-{run_id[:8]}", daemon=True
        )
        self._thread.start()

    def poke(self) -> None:
        """New records: send soon (the thread also wakes every half second)."""
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every record is sent; True if so."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._progress:
            while self.spool.pending() and self.parked is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._progress.wait(min(left, 0.2))
        return not self.spool.pending()

    def close(self, timeout: float) -> bool:
        """Flush (bounded), stop the thread; remove the spool if it is empty. True if all sent."""
        done = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if done and not self._thread.is_alive():
            self.spool.remove()
        else:
            self.spool.close()
            log.warning(
                "%s: unsent values kept in %s; they are sent with the next run",
                self.run_id[:8],
                self.spool.path,
            )
        return done

    def _loop(self) -> None:
        failures = 0
        with self._client_factory() as client:
            try:  # what earlier processes could not send, before this run's values
                resend_leftovers(self.spool.path.parent, client.server.url, client)
            except (AmlpkgError, OSError, ValueError) as exc:
                log.warning("could not resend earlier spools: %s", exc)
            while not self._stop.is_set():
                if self.parked is not None or not self.spool.pending():
                    self._wake.wait(_INTERVAL_S)
                    self._wake.clear()
                    continue
                try:
                    send_pending(client, self.run_id, self.spool)
                    failures = 0
                except AmlpkgError as exc:
                    if exc.http_status in (401, 403):
                        # Retrying cannot fix a token; keep the spool for a later resend.
                        self.parked = exc
                        log.warning("%s: the server refused the token: %s", self.run_id[:8], exc)
                    else:
                        failures += 1
                        self._wake.wait(backoff(failures))
                        self._wake.clear()
                with self._progress:
                    self._progress.notify_all()


def send_pending(client: TeamClient, run_id: str, spool: Spool) -> None:
    """Send what the spool holds, batch by batch; raise on a failure worth retrying."""
    while spool.pending():
        records, end = spool.read_batch()
        if not records:
            return
        if "e" in records[0]:
            status, exit_code = records[0]["e"]
            client.end_run(run_id, status, exit_code)
            spool.commit(end)
            continue
        try:
            client.log_batch(run_id, merge(records))
        except (InvalidArgumentError, NotFoundError, PayloadTooLargeError) as exc:
            # The server will never take this batch: send its records one by one and
            # drop only those it refuses, so one bad value costs no other.
            log.warning("%s: the server refused a batch: %s", run_id[:8], exc)
            for record in records if len(records) > 1 else []:
                with contextlib.suppress(InvalidArgumentError, NotFoundError, PayloadTooLargeError):
                    client.log_batch(run_id, merge([record]))
        spool.commit(end)


def resend_leftovers(
    folder: Path, url: str, client: TeamClient, max_age_s: float = 7 * 86400
) -> int:
    """Send spools other processes left unsent (server down at their exit); return how many.

    A spool whose process still lives is left to it. Spools older than ``max_age_s``
    are deleted unsent, so the folder stays bounded.
    """
    sent = 0
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        run_id, _, rest = path.stem.partition("-")
        pid = int(rest.partition("-")[0] or 0)
        if pid_alive(pid):
            continue
        if time.time() - path.stat().st_mtime > max_age_s:
            path.unlink(missing_ok=True)
            path.with_suffix(".sent").unlink(missing_ok=True)
            continue
        with path.open("rb") as source:
            header = json.loads(source.readline() or b"{}")
        if header.get("url") != url:
            continue
        # Claim it by renaming it to this process's pid: two runs starting at once
        # never send one spool twice, and a claim dies with its process.
        claimed = path.with_name(f"{run_id}-{os.getpid()}-{secrets.token_hex(4)}.jsonl")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.replace(path.with_suffix(".sent"), claimed.with_suffix(".sent"))
        spool = Spool.reopen(claimed)
        try:
            send_pending(client, run_id, spool)
        except AmlpkgError:
            spool.close()
            return sent  # the server is not taking it now; try with the next run
        spool.remove()
        sent += 1
    return sent
