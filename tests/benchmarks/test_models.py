"""The benchmark models: shapes, FLOP counts and the repository layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from amlpkg.runtime.model_config import load_model_config
from benchmarks.models import build_cnn, build_mlp, count_flops, write_repository


def test_mlp_flops_are_the_three_gemms() -> None:
    assert count_flops(build_mlp().proto) == 2 * (64 * 256 + 256 * 256 + 256 * 10)


def test_cnn_is_about_18_mflop_per_sample() -> None:
    flops = count_flops(build_cnn().proto)
    assert 17e6 <= flops <= 19e6, flops


def test_models_run_with_a_dynamic_batch() -> None:
    for model in (build_mlp(), build_cnn()):
        session = ort.InferenceSession(model.proto.SerializeToString())
        (out,) = session.run(None, {"input": model.sample(3)})
        assert out.shape == (3, 10)
        assert np.isfinite(out).all()


def test_models_and_samples_come_from_fixed_seeds() -> None:
    assert build_cnn().proto.SerializeToString() == build_cnn().proto.SerializeToString()
    assert np.array_equal(build_mlp().sample(2), build_mlp().sample(2))


def test_repository_is_triton_layout_with_a_valid_config(tmp_path: Path) -> None:
    repo = write_repository(tmp_path, [build_mlp()], max_batch_size=16, max_queue_delay_us=250)
    assert (repo / "mlp" / "1" / "model.onnx").is_file()
    config = load_model_config(repo / "mlp")
    assert config.max_batch_size == 16
    assert config.dynamic_batching is not None
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
