"""Per-model statistics summed over the worker processes of one server.

Triton's statistics extension (``GET /v2/models/{m}/stats``, gRPC ``ModelStatistics``)
counts requests per model; with ``--workers N`` each worker counts only what it served,
and a client such as perf_analyzer, which reads the counters before and after each
measurement window on whichever worker its connection reaches, would see them jump
between workers. So each worker answers its own counters on a unix socket in the
workers' private folder, and the worker asked through the API adds its siblings'.

Only a statistics request pays for this (one round trip per sibling); the inference
path never touches it. A sibling that is restarting (no socket yet, or not answering
within :data:`PEER_TIMEOUT_S`) is left out, and the counters of a worker that died
are lost with it, as they are in Triton when a server restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

PEER_TIMEOUT_S = 2.0
# The largest answer read from a sibling (thousands of model versions fit).
MAX_ANSWER_BYTES = 64 * 1024 * 1024

LocalStats = Callable[[str | None, str | None], Awaitable[dict[str, Any]]]


class StatsPeers:
    """This worker's statistics socket, and the way to ask its siblings for theirs."""

    def __init__(self, folder: Path, index: int) -> None:
        self.folder = folder
        self.path = folder / f"{index}.sock"
        self._server: asyncio.AbstractServer | None = None

    async def start(self, local: LocalStats) -> None:
        """Answer siblings' questions with ``local(name, version)`` (this worker's counts)."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                query = orjson.loads(await reader.readline())
                result = await local(query.get("name"), query.get("version"))
                writer.write(orjson.dumps(result) + b"\n")
                await writer.drain()
            except Exception as exc:  # a model a sibling does not have: it adds nothing
                log.debug("statistics for a sibling: %s", exc)
            finally:
                writer.close()

        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by the worker this one replaces
        self._server = await asyncio.start_unix_server(answer, path=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def siblings(self, name: str | None, version: str | None) -> list[dict[str, Any]]:
        """Every reachable sibling's ``{"model_stats": [...]}`` for the same question."""
        paths = sorted(p for p in self.folder.glob("*.sock") if p != self.path)
        answers = await asyncio.gather(*(_ask(p, name, version) for p in paths))
        return [a for a in answers if a is not None]


async def _ask(path: Path, name: str | None, version: str | None) -> dict[str, Any] | None:
    try:
        async with asyncio.timeout(PEER_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_ANSWER_BYTES)
            try:
                writer.write(orjson.dumps({"name": name, "version": version}) + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
        answer = orjson.loads(line) if line else None
    except (OSError, TimeoutError, ValueError, orjson.JSONDecodeError) as exc:
        log.debug("statistics of the worker at %s left out: %s", path.name, exc)
        return None
    return answer if isinstance(answer, dict) else None


def _add_duration(into: dict[str, int], more: dict[str, int]) -> None:
    into["count"] = into.get("count", 0) + int(more.get("count", 0))
    into["ns"] = into.get("ns", 0) + int(more.get("ns", 0))


def _add_entry(into: dict[str, Any], more: dict[str, Any]) -> None:
    into["last_inference"] = max(into["last_inference"], more.get("last_inference", 0))
    into["inference_count"] += more.get("inference_count", 0)
    into["execution_count"] += more.get("execution_count", 0)
    for phase, duration in more.get("inference_stats", {}).items():
        _add_duration(into["inference_stats"].setdefault(phase, {}), duration)
    sizes = {b["batch_size"]: b for b in into["batch_stats"]}
    for batch in more.get("batch_stats", []):
        mine = sizes.get(batch["batch_size"])
        if mine is None:
            sizes[batch["batch_size"]] = batch
            continue
        for phase in ("compute_input", "compute_infer", "compute_output"):
            _add_duration(mine[phase], batch[phase])
    into["batch_stats"] = [sizes[size] for size in sorted(sizes)]


def merge(own: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """``own`` with the counters of ``others`` added, entry by entry (name, version).

    Only versions this worker reports are kept: every worker loads the same models,
    and one a sibling reports alone is in the middle of a restart.
    """
    entries = {(e["name"], e["version"]): e for e in own["model_stats"]}
    for other in others:
        for entry in other.get("model_stats", []):
            mine = entries.get((entry.get("name"), entry.get("version")))
            if mine is not None:
                _add_entry(mine, entry)
    return own
