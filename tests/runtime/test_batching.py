"""Dynamic batching through the data plane on real ONNX Runtime, and the batcher's own rules."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from amlpkg.runtime.batching import BatchRecord, DynamicBatcher
from amlpkg.runtime.batching.merge import run_merged, union_outputs
from amlpkg.runtime.batching.types import ScheduledResult
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import (
    InferenceFailedError,
    ModelRunError,
    QueueFullError,
    UnavailableError,
    grpc_code_name,
)
from tests.runtime.test_core_dataplane import with_dataplane
from tests.runtime.toy_models import (
    add_sub_model,
    fails_on_large_model,
    identity_model,
    infer_request,
    save,
    sum_over_batch_model,
    write_config,
)

BATCHING = (
    "max_batch_size: 8\n"
    "dynamic_batching: {max_queue_delay_microseconds: 50000}\n"  # 50 ms: batches form
)


def batch_counts(dp: DataPlane, model: str) -> tuple[float, float]:
    """(number of runs, runs of exactly one sample) from the batch-size histogram."""
    labels = {"model": model, "version": "1"}
    registry = dp.metrics_registry
    runs = registry.get_sample_value("amlpkg_inference_batch_size_count", labels) or 0.0
    ones = registry.get_sample_value("amlpkg_inference_batch_size_bucket", {**labels, "le": "1.0"})
    return runs, ones or 0.0


def test_concurrent_requests_form_batches_and_outputs_go_to_their_caller(tmp_path: Path) -> None:
    save(add_sub_model(), tmp_path, "simple")
    write_config(tmp_path, "simple", BATCHING)

    async def body(dp: DataPlane) -> None:
        requests = []
        for i in range(12):
            a = np.full((1, 16), float(i), np.float32)
            b = np.arange(16, dtype=np.float32).reshape(1, 16)
            # Half the callers want only OUTPUT1: each must get exactly what it asked for.
            wanted = ["OUTPUT1"] if i % 2 else None
            requests.append((a, b, wanted))
        responses = await asyncio.gather(
            *(
                dp.infer(infer_request("simple", {"INPUT0": a, "INPUT1": b}, outputs=w))
                for a, b, w in requests
            )
        )
        for (a, b, wanted), response in zip(requests, responses, strict=True):
            names = [o.name for o in response.outputs]
            assert names == (wanted or ["OUTPUT0", "OUTPUT1"])
            by_name = {o.name: o.data for o in response.outputs}
            np.testing.assert_array_equal(by_name["OUTPUT1"], a - b)
            if "OUTPUT0" in by_name:
                np.testing.assert_array_equal(by_name["OUTPUT0"], a + b)
        runs, ones = batch_counts(dp, "simple")
        assert 0 < runs < 12  # fewer runs than requests ...
        assert ones < runs  # ... and at least one run of more than one sample
        stats = (await dp.model_statistics("simple"))["model_stats"][0]
        assert stats["inference_count"] == 12
        assert stats["execution_count"] == runs
        assert max(b["batch_size"] for b in stats["batch_stats"]) > 1

    with_dataplane(tmp_path, body)


def test_max_batch_size_counts_samples_not_requests(tmp_path: Path) -> None:
    save(identity_model("FP32"), tmp_path, "ident")
    write_config(
        tmp_path,
        "ident",
        "max_batch_size: 4\ndynamic_batching: {max_queue_delay_microseconds: 50000}\n",
    )

    async def body(dp: DataPlane) -> dict:
        sizes = [3, 3, 2, 1, 4]
        arrays = [np.full((n, 4), float(i), np.float32) for i, n in enumerate(sizes)]
        responses = await asyncio.gather(
            *(dp.infer(infer_request("ident", {"INPUT0": a})) for a in arrays)
        )
        for array, response in zip(arrays, responses, strict=True):
            np.testing.assert_array_equal(response.outputs[0].data, array)
        return (await dp.model_statistics("ident"))["model_stats"][0]

    stats = with_dataplane(tmp_path, body)
    assert stats["inference_count"] == 13
    assert all(b["batch_size"] <= 4 for b in stats["batch_stats"])


def test_an_onnxruntime_error_reaches_every_waiter_of_the_batch(tmp_path: Path) -> None:
    save(fails_on_large_model(), tmp_path, "fragile")
    write_config(tmp_path, "fragile", BATCHING)

    async def body(dp: DataPlane) -> None:
        # The first finds the model idle and runs alone; the other four wait for company
        # and form one batch, which one poisoned request spoils for all.
        values = [1.0, 2.0, 5000.0, 3.0, 4.0]
        results = await asyncio.gather(
            *(
                dp.infer(infer_request("fragile", {"x": np.full((1, 4), v, np.float32)}))
                for v in values
            ),
            return_exceptions=True,
        )
        runs, _ = batch_counts(dp, "fragile")
        assert runs == 1  # only the lone first request's run succeeded
        assert not isinstance(results[0], BaseException)
        for result in results[1:]:
            # The data, not the server, is at fault: 400, not 500.
            assert isinstance(result, ModelRunError) and result.http_status == 400
            assert "indices element out of data bounds" in result.message
        # The model still serves afterwards.
        ok = await dp.infer(infer_request("fragile", {"x": np.ones((1, 4), np.float32)}))
        np.testing.assert_array_equal(ok.outputs[0].data, np.full((1, 4), 2.0, np.float32))
        registry = dp.metrics_registry
        failures = registry.get_sample_value(
            "amlpkg_inference_requests_total",
            {"model": "fragile", "version": "1", "outcome": "failure"},
        )
        assert failures == 4

    with_dataplane(tmp_path, body)


def test_an_output_that_loses_the_batch_dim_is_an_error_for_everyone(tmp_path: Path) -> None:
    save(sum_over_batch_model(), tmp_path, "summer")
    write_config(tmp_path, "summer", BATCHING)

    async def body(dp: DataPlane) -> None:
        results = await asyncio.gather(
            *(dp.infer(infer_request("summer", {"x": np.ones((2, 4), np.float32)})) for _ in "ab"),
            return_exceptions=True,
        )
        for result in results:
            assert isinstance(result, InferenceFailedError)
            assert "output 'y' has shape [1, 4] but the batch had" in result.message

    with_dataplane(tmp_path, body)


def test_a_request_to_an_idle_model_does_not_wait_the_window(tmp_path: Path) -> None:
    save(identity_model("FP32"), tmp_path, "ident")
    # A 20 s window: a request that waited it would show 20 s of queue time.
    write_config(
        tmp_path,
        "ident",
        "max_batch_size: 8\ndynamic_batching: {max_queue_delay_microseconds: 20000000}\n",
    )

    async def body(dp: DataPlane) -> None:
        for _ in range(3):  # each finds the model idle again
            x = np.ones((1, 4), np.float32)
            response = await asyncio.wait_for(dp.infer(infer_request("ident", {"INPUT0": x})), 30)
            np.testing.assert_array_equal(response.outputs[0].data, x)
        stats = (await dp.model_statistics("ident"))["model_stats"][0]
        assert stats["batch_stats"][0]["batch_size"] == 1
        assert stats["execution_count"] == 3
        assert stats["inference_stats"]["queue"]["ns"] < 10_000_000_000

    with_dataplane(tmp_path, body)


def test_a_request_arriving_while_a_batch_runs_waits_the_window_for_company() -> None:
    async def main() -> None:
        async with busy_batcher(max_queue_delay_s=0.2) as busy:
            later = [busy.submit() for _ in "ab"]
            await asyncio.sleep(0)
            busy.run.gate.set()
            await asyncio.gather(busy.first, *later)
            assert busy.run.sizes == [1, 2]  # the first ran at once; the others together
            await busy.batcher.close()

    asyncio.run(main())


def test_a_preferred_batch_size_is_sent_without_waiting(tmp_path: Path) -> None:
    save(identity_model("FP32"), tmp_path, "ident")
    # A delay of an hour: only the preferred size can send this batch.
    write_config(
        tmp_path,
        "ident",
        "max_batch_size: 8\ndynamic_batching: "
        "{max_queue_delay_microseconds: 3600000000, preferred_batch_size: [2]}\n",
    )

    async def body(dp: DataPlane) -> None:
        # The first finds the model idle and runs alone; the next two wait for company.
        xs = [np.full((1, 4), float(i), np.float32) for i in range(3)]
        responses = await asyncio.wait_for(
            asyncio.gather(*(dp.infer(infer_request("ident", {"INPUT0": x})) for x in xs)), 30
        )
        assert [r.outputs[0].data[0, 0] for r in responses] == [0.0, 1.0, 2.0]

    with_dataplane(tmp_path, body)


def test_incompatible_shapes_go_to_separate_batches(tmp_path: Path) -> None:
    save(identity_model("FP32", ("batch", "n")), tmp_path, "ident")
    write_config(tmp_path, "ident", BATCHING)

    async def body(dp: DataPlane) -> None:
        xs = [np.full((1, 3 + i % 2), float(i), np.float32) for i in range(6)]
        responses = await asyncio.gather(
            *(dp.infer(infer_request("ident", {"INPUT0": x})) for x in xs)
        )
        for x, response in zip(xs, responses, strict=True):
            np.testing.assert_array_equal(response.outputs[0].data, x)

    with_dataplane(tmp_path, body)


# --- the batcher alone, with a run function the test controls -------------------------------


class GatedRun:
    """A run function that blocks until the test opens the gate; records batch sizes."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, feeds: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        self.started.set()
        self.gate.wait(30)
        self.sizes.append(len(feeds["x"]))
        return [feeds["x"] * 2 for _ in names]


def make_batcher(run: GatedRun, pool: ThreadPoolExecutor, **kwargs: float) -> DynamicBatcher:
    records: list[BatchRecord] = []
    options: dict = {"max_batch_size": 8, "max_queue_delay_s": 0.0, "max_queue_size": 2}
    options.update(kwargs)
    return DynamicBatcher(run, pool, records.append, name="gated", **options)


@dataclass
class Busy:
    """A gated batcher whose only instance runs ``first`` until the test opens the gate."""

    run: GatedRun
    batcher: DynamicBatcher
    first: asyncio.Future[ScheduledResult]

    def submit(self, scale: float = 1.0) -> asyncio.Future[ScheduledResult]:
        """Queue one request of a single row (``scale`` times ones)."""
        x = np.full((1, 1), scale, np.float32)
        return asyncio.ensure_future(self.batcher.submit({"x": x}, ("y",), 1))


@contextlib.asynccontextmanager
async def busy_batcher(**kwargs: float) -> AsyncIterator[Busy]:
    """A :class:`Busy` batcher (``kwargs`` as for :func:`make_batcher`)."""
    run = GatedRun()
    with ThreadPoolExecutor(1) as pool:
        batcher = make_batcher(run, pool, **kwargs)
        x = np.ones((1, 1), np.float32)
        first = asyncio.ensure_future(batcher.submit({"x": x}, ("y",), 1))
        await asyncio.to_thread(run.started.wait, 30)  # the only instance is busy now
        yield Busy(run, batcher, first)


def test_a_full_queue_refuses_with_unavailable() -> None:
    async def main() -> None:
        async with busy_batcher() as busy:
            queued = [busy.submit() for _ in "ab"]
            await asyncio.sleep(0)
            with pytest.raises(QueueFullError) as caught:
                await busy.submit()
            assert caught.value.http_status == 503
            assert grpc_code_name(caught.value) == "UNAVAILABLE"
            assert "queue is full (2 waiting)" in caught.value.message
            busy.run.gate.set()
            await asyncio.gather(busy.first, *queued)
            assert busy.run.sizes == [1, 2]  # the two that waited ran together
            await busy.batcher.close()

    asyncio.run(main())


def test_a_cancelled_waiter_does_not_break_its_batch() -> None:
    async def main() -> None:
        async with busy_batcher(max_queue_size=10) as busy:
            gone = busy.submit(3.0)
            stays = busy.submit(5.0)
            await asyncio.sleep(0)
            gone.cancel()
            busy.run.gate.set()
            result = await stays
            assert result.outputs["y"][0, 0] == 10.0
            await busy.first
            assert gone.cancelled()
            await busy.batcher.close()

    asyncio.run(main())


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    async def main() -> None:
        async with busy_batcher(max_queue_size=10) as busy:
            waiting = busy.submit()
            await asyncio.sleep(0)
            closing = asyncio.ensure_future(busy.batcher.close())
            await asyncio.sleep(0)
            busy.run.gate.set()
            await closing
            assert (await busy.first).outputs["y"][0, 0] == 2.0  # running batches finish
            with pytest.raises(UnavailableError, match="unloaded"):
                await waiting
            with pytest.raises(UnavailableError, match="shutting down"):
                await busy.submit()

    asyncio.run(main())


def test_merge_runs_the_union_and_slices_back() -> None:
    calls: list[tuple[str, ...]] = []

    def run(feeds: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        calls.append(tuple(names))
        return [feeds["x"] + (1 if n == "a" else 2) for n in names]

    feeds = [{"x": np.zeros((2, 1))}, {"x": np.ones((1, 1))}]
    results, record = run_merged(run, feeds, [("a",), ("b", "a")], [2, 1], 0)
    assert calls == [("a", "b")]
    assert list(results[0]) == ["a"] and results[0]["a"].shape == (2, 1)
    assert list(results[1]) == ["b", "a"] and results[1]["b"][0, 0] == 3.0
    assert record.batch_size == 3
    assert union_outputs([("b",), ("a", "b")]) == ("b", "a")


def test_up_to_instance_count_batches_run_at_once() -> None:
    class Counting(GatedRun):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()
            self.active = 0
            self.peak = 0
            self.two_running = threading.Event()

        def __call__(self, feeds: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
                if self.active == 2:
                    self.two_running.set()
            try:
                return super().__call__(feeds, names)
            finally:
                with self.lock:
                    self.active -= 1

    async def main() -> None:
        run = Counting()
        with ThreadPoolExecutor(2) as pool:
            batcher = make_batcher(run, pool, max_queue_size=10, instances=2)
            x = np.ones((1, 1), np.float32)
            calls = [asyncio.ensure_future(batcher.submit({"x": x}, ("y",), 1)) for _ in range(3)]
            assert await asyncio.to_thread(run.two_running.wait, 30)
            assert batcher.queued == 1  # the third waits for a free instance
            run.gate.set()
            await asyncio.gather(*calls)
            assert run.peak == 2
            await batcher.close()

    asyncio.run(main())
