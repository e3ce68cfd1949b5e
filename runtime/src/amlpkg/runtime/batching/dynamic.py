"""Dynamic batching: concurrent requests of one model version merged into one run.

Designed against bugs other servers shipped: the deadline is computed once per
batch from its first request's arrival (MLServer #1936); ``max_batch_size`` counts
samples, not requests (BentoML #3710); every request gets only the outputs it
asked for (MLServer #514); the queue is bounded and refuses work when full.
Unlike Triton (unless ``idle_runs_at_once`` is off), a request that finds the
model idle (nothing queued, no batch running) runs at once: the batching window
exists to gather company under load, and an idle server has none to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from amlpkg.runtime.batching.merge import Signature, run_merged, signature
from amlpkg.runtime.batching.types import BatchCallback, RunFn, ScheduledResult
from amlpkg.runtime.errors import (
    AmlpkgError,
    InferenceFailedError,
    QueueFullError,
    UnavailableError,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Item:
    feeds: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    batch: int
    signature: Signature
    arrival_ns: int
    arrival_loop: float
    future: asyncio.Future[ScheduledResult] = field(repr=False)


def _copy_error(exc: BaseException) -> BaseException:
    # Each waiter gets its own exception object: one raised in many tasks would share
    # (and keep growing) a single traceback.
    if isinstance(exc, AmlpkgError):
        return type(exc)(exc.message, hint=exc.hint)
    return InferenceFailedError(f"batch failed: {exc!r}")


class DynamicBatcher:
    """A bounded queue plus a loop that forms batches and runs them on worker threads."""

    def __init__(
        self,
        run: RunFn,
        executor: Executor,
        on_batch: BatchCallback,
        *,
        max_batch_size: int,
        max_queue_delay_s: float,
        preferred_batch_sizes: tuple[int, ...] = (),
        max_queue_size: int = 1024,
        idle_runs_at_once: bool = True,
        instances: int = 1,
        name: str = "model",
    ) -> None:
        self._run = run
        self._executor = executor
        self._on_batch = on_batch
        self._max_batch = max_batch_size
        self._delay = max_queue_delay_s
        self._preferred = frozenset(preferred_batch_sizes)
        self._max_queue = max_queue_size
        self._idle_runs_at_once = idle_runs_at_once
        self._instances = instances
        self._name = name
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._active = 0  # batches running now (touched only on the event loop)
        self._closed = False

    @property
    def queued(self) -> int:
        """Requests waiting to be batched."""
        return len(self._queue)

    async def submit(
        self, feeds: dict[str, np.ndarray], outputs: tuple[str, ...], batch: int
    ) -> ScheduledResult:
        """Queue one request of ``batch`` samples and wait for its share of a batch."""
        if self._closed:
            raise UnavailableError(f"model {self._name!r} is shutting down", hint="retry later")
        if len(self._queue) >= self._max_queue:
            raise QueueFullError(
                f"model {self._name!r}: request queue is full ({self._max_queue} waiting)",
                hint="retry later, or raise dynamic_batching.max_queue_size / instance_count",
            )
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._slots = asyncio.Semaphore(self._instances)
            self._task = loop.create_task(self._batch_loop(), name=f"batcher-{self._name}")
            self._task.add_done_callback(self._loop_ended)
        assert self._wakeup is not None
        item = _Item(
            feeds,
            outputs,
            batch,
            signature(feeds),
            time.time_ns(),
            loop.time(),
            loop.create_future(),
        )
        idle = self._delay == 0 or (self._idle_runs_at_once and self._active == 0)
        if idle and not self._queue and not self._slots_busy():
            # Nothing to wait for (no window, or nothing queued or running that could join
            # a batch) and an instance is free: run now, skipping the window and two hops.
            assert self._slots is not None
            await self._slots.acquire()
            await self._execute([item])
            return item.future.result()
        self._queue.append(item)
        self._wakeup.set()
        # A cancelled caller cancels only its own future; the batch skips or drops it.
        return await item.future

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug in the loop must not leave callers waiting forever.
        logger.error("batcher of %s stopped", self._name, exc_info=task.exception())
        self._closed = True
        self._fail_queued(f"model {self._name!r}: the batcher stopped: {task.exception()!r}")

    def _fail_queued(self, message: str) -> None:
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(UnavailableError(message))

    def _slots_busy(self) -> bool:
        return self._slots is None or self._slots.locked()

    async def _batch_loop(self) -> None:
        assert self._slots is not None and self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            # Idle, the loop holds no instance, so a lone request can take the fast path.
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Form a batch only when an instance is free: under load, requests pile up
            # meanwhile and the next batch is fuller.
            await self._slots.acquire()
            try:
                items = await self._collect(loop)
            except BaseException:
                self._slots.release()
                raise
            if not items:
                self._slots.release()
                continue
            task = loop.create_task(self._execute(items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Item]:
        assert self._wakeup is not None
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()  # its caller went away before it was batched
        if not self._queue:
            return []
        first = self._queue.popleft()
        items = [first]
        total = first.batch
        deadline = first.arrival_loop + self._delay  # once per batch, from the first arrival
        try:
            while True:
                total, full = self._take_compatible(items, total, first.signature)
                if full or total >= self._max_batch or total in self._preferred:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
        except BaseException:
            self._queue.extendleft(reversed(items))  # closing: close() fails them
            raise
        return [item for item in items if not item.future.done()]

    def _take_compatible(self, items: list[_Item], total: int, sig: Signature) -> tuple[int, bool]:
        """Move queued requests that fit this batch into ``items``, keeping the others' order."""
        keep: deque[_Item] = deque()
        full = False
        for item in self._queue:
            if item.future.done():
                continue
            if full or item.signature != sig:
                keep.append(item)
            elif total + item.batch > self._max_batch:
                full = True
                keep.append(item)
            else:
                items.append(item)
                total += item.batch
        self._queue = keep
        return total, full

    async def _execute(self, items: list[_Item]) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        self._active += 1
        try:
            results, record = await loop.run_in_executor(
                self._executor,
                run_merged,
                self._run,
                [i.feeds for i in items],
                [i.outputs for i in items],
                [i.batch for i in items],
                time.time_ns(),
            )
        except Exception as exc:
            # One failed run fails every request that was in it.
            logger.debug("batch of %d requests failed: %s", len(items), exc)
            for item in items:
                if not item.future.done():
                    item.future.set_exception(_copy_error(exc))
            return
        finally:
            self._active -= 1
            self._slots.release()
        self._on_batch(record)
        for item, outputs in zip(items, results, strict=True):
            if not item.future.done():
                item.future.set_result(ScheduledResult(outputs, item.arrival_ns, record))

    async def close(self) -> None:
        """Refuse new work, fail what is still queued, wait for running batches."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_queued(f"model {self._name!r} was unloaded before this request ran")
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
