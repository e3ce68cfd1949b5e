"""A run on a team server, with the methods of the embedded :class:`~amlpkg.trainer.tracking.Run`.

Params, metrics and tags are checked here (so a bad value fails at the call, as
it does embedded) and then only spooled: the sender thread delivers them. A
value without a step gets this key's next step here, in the order of the calls,
so a batch sent twice after a lost answer repeats steps instead of shifting them.
Artifacts are uploaded at the call, streamed, with their sha256 checked by the server.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from amlpkg.errors import InvalidArgumentError, NotFoundError, UnavailableError
from amlpkg.trainer import provenance
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server, cache_dir
from amlpkg.trainer.remote.spool import DEFAULT_MAX_BYTES, Record, Sender, Spool
from amlpkg.trainer.values import check_key, metric_value

FLUSH_TIMEOUT_ENV = "AMLPKG_TRACKING_FLUSH_TIMEOUT_S"
SPOOL_MAX_ENV = "AMLPKG_TRACKING_SPOOL_MAX_BYTES"
_TEXT_MAX = 6000  # the server's bound on a param or tag value
_PER_RECORD = 64  # params/tags per spooled line: a batch stays far under the body limit


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    try:
        return float(text) if text else default
    except ValueError:
        raise InvalidArgumentError(f"{name}={text!r} is not a number") from None


def _texts(kind: str, values: dict[str, Any]) -> list[dict[str, str]]:
    """``values`` stringified and checked, cut into records of a bounded size."""
    items: list[tuple[str, str]] = []
    for key, value in values.items():
        text = str(value)
        if len(text) > _TEXT_MAX:
            raise InvalidArgumentError(
                f"{kind} {key!r} has {len(text)} characters; a team server keeps {_TEXT_MAX}",
                hint="log long text as an artifact",
            )
        items.append((check_key(kind, key), text))
    return [dict(items[i : i + _PER_RECORD]) for i in range(0, len(items), _PER_RECORD)]


class RemoteRun:
    """A run being logged to a server. ``owned`` runs are ended by this process."""

    def __init__(self, server: Server, run_id: str, *, owned: bool) -> None:
        self.server = server
        self.id = run_id
        self.owned = owned
        self._lock = threading.Lock()
        self._steps: dict[str, int] = {}
        self._closed = False
        self._client = TeamClient(server, retries=5)
        max_bytes = int(_env_number(SPOOL_MAX_ENV, DEFAULT_MAX_BYTES))
        self.spool = Spool.create(cache_dir() / "spool", server.url, run_id, max_bytes)
        self.sender = Sender(self.spool, run_id, lambda: TeamClient(server, timeout=15, retries=0))
        # Also for joined runs (inside `amlpkg run`), which the tracking hooks do not end.
        atexit.register(self._flush_at_exit)

    @classmethod
    def create(cls, server: Server, experiment: str | None, name: str | None) -> RemoteRun:
        """A new run on the server, owned by this process."""
        with TeamClient(server) as client:
            info = provenance.collect(provenance.current_command(), Path.cwd())
            made = client.create_run(experiment, name, info=info)
        return cls(server, str(made["id"]), owned=True)

    @classmethod
    def join(cls, server: Server, run_id: str) -> RemoteRun:
        """The run ``amlpkg run`` made (``AMLPKG_RUN_ID``); checked when the server answers."""
        try:
            with TeamClient(server, retries=0, timeout=10) as client:
                client.get_run(run_id)
        except UnavailableError:
            pass  # unreachable now: the spool keeps the values until it answers
        except NotFoundError as exc:
            raise NotFoundError(
                f"no run {run_id} on {server.url}", hint="was it started against another server?"
            ) from exc
        return cls(server, run_id, owned=False)

    def _append(self, record: Record) -> None:
        if self._closed:
            raise InvalidArgumentError(f"run {self.id} has ended", hint="start a new run")
        self.spool.append(record)
        self.sender.poke()

    def log_params(self, params: dict[str, Any]) -> None:
        """Record parameters (stringified)."""
        for chunk in _texts("param", params):
            self._append({"p": chunk})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Append metric values at ``step`` (default: each key's next step)."""
        rows: list[list[Any]] = []
        for key, raw in metrics.items():
            value = metric_value(check_key("metric", key), raw)
            if step is not None and not 0 <= int(step) <= 2**62:
                raise InvalidArgumentError(f"step {step} is out of range (0 to 2**62)")
            rows.append([key, value, step])
        with self._lock:  # steps follow the order of the calls, across threads
            for row in rows:
                key = row[0]
                row[2] = int(row[2]) if row[2] is not None else self._steps.get(key, 0)
                self._steps[key] = max(self._steps.get(key, 0), row[2] + 1)
            self._append({"m": rows})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags."""
        for chunk in _texts("tag", tags):
            self._append({"t": chunk})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> list[str]:
        """Upload a file, or every file under a folder, as artifacts; return their run paths."""
        from amlpkg.trainer.tracking import artifact_pairs

        logged: list[str] = []
        for file, run_path in artifact_pairs(Path(path), artifact_path):
            self._client.upload_artifact(self.id, str(run_path), file)
            logged.append(str(run_path))
        return logged

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until every logged value is on the server; True if so."""
        return self.sender.flush(
            _env_number(FLUSH_TIMEOUT_ENV, 30.0) if timeout is None else timeout
        )

    def end(self, status: str) -> None:
        """Send what is left (bounded wait), end the run if owned, stop the sender."""
        if self._closed:
            return
        if self.owned:
            self._append({"e": [status, None]})
        self._closed = True
        try:
            self.sender.close(_env_number(FLUSH_TIMEOUT_ENV, 30.0))
        finally:
            self._client.close()
            atexit.unregister(self._flush_at_exit)

    def _flush_at_exit(self) -> None:
        if not self._closed:
            self.end("completed" if not self.owned else "failed")

    def __enter__(self) -> RemoteRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from amlpkg.trainer.tracking import end_run, exit_status

        end_run(exit_status(exc_type))
