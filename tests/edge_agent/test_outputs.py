"""Output summaries on the device: one scalar per row, fixed bins, counted per version."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.collector.outputs import MAX_BINS, js_distance
from amlpkg.edge_agent import outputs
from amlpkg.edge_agent.backend import SMOKE_ID
from amlpkg.edge_agent.sampler import TelemetrySampler
from amlpkg.runtime.types import InferInput, InferRequest
from tests.edge_agent.conftest import add_model


def test_rows_are_summarized_by_value_argmax_or_norm() -> None:
    # one value per row (a regressor, a classifier's label): the value
    assert outputs.row_summaries(np.array([[2.5], [-1.0]], np.float32)).tolist() == [2.5, -1.0]
    assert outputs.row_summaries(np.array([0, 2, 1], np.int64)).tolist() == [0, 2, 1]
    # probabilities: the argmax class
    probs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], np.float32)
    assert outputs.row_summaries(probs).tolist() == [1, 0]
    # anything else: the L2 norm of the row
    assert outputs.row_summaries(np.full((2, 4), 3.0, np.float32)).tolist() == [6.0, 6.0]
    assert outputs.row_summaries(np.array([b"x"], dtype=object)).size == 0


def test_bins_are_fixed_bounded_and_tell_shifted_outputs_apart() -> None:
    values = np.array([np.nan, -1e30, -3.0, 0.0, 1e-9, 1.0, 4.0, 6.0, 1e30, np.inf])
    found = outputs.bins(values)
    assert found.min() >= 0 and found.max() < outputs.BINS <= MAX_BINS
    assert found[0] == outputs.NAN_BIN and found[3] == found[4] == outputs.ZERO_BIN
    assert found[1] < found[2] < found[3] < found[5] < found[6] < found[7] < found[8]
    assert found[8] == found[9] == outputs.BINS - 1  # clamped, never a new bin
    # Y = X + 1 and Y = X + 2 on the same inputs: norms 4 and 6 fall in different bins
    base, shifted = np.full((50, 4), 1.0) + 1.0, np.full((50, 4), 1.0) + 2.0
    assert js_distance(outputs.histogram(base), outputs.histogram(base)) == 0.0
    assert js_distance(outputs.histogram(base), outputs.histogram(shifted)) == 1.0


def test_the_agent_data_plane_counts_summaries_and_the_sampler_reports_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        dp = outputs.SummarizingDataPlane.from_repository(tmp_path)
        await dp.start()
        sampler = TelemetrySampler(dp)
        x = np.ones((3, 4), dtype=np.float32)
        try:
            await dp.infer(InferRequest("m", None, [InferInput("X", "FP32", (3, 4), x)]))
            smoke = InferRequest("m", None, [InferInput("X", "FP32", (1, 4), x[:1])], id=SMOKE_ID)
            await dp.infer(smoke)  # not live traffic: not counted
            first = await sampler.sample()
            second = await sampler.sample()
        finally:
            await dp.stop()
        return first, second

    first, second = asyncio.run(scenario())
    norm_bin = str(int(outputs.bins(np.array([4.0]))[0]))  # rows [2, 2, 2, 2]
    assert first["outputs"] == {norm_bin: 3}
    assert "outputs" not in second  # deltas: nothing new
