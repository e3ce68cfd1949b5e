"""Fixtures for the trainer tests: small ONNX models (``home``/``ws``: tests/conftest.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlpkg.trainer import tracking
from tests.services import require


def require_module(name: str) -> None:
    """Skip when ``name`` is not installed; fail instead in CI (CI=true), where it must be."""
    require(importlib.util.find_spec(name) is not None, f"{name} is not installed")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's workspace or a run id from outside."""
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path / "default-home"))
    monkeypatch.delenv(tracking.RUN_ID_ENV, raising=False)
    yield
    tracking.end_run("failed")  # a test that left a run open must not leak it


def make_onnx(path: Path, *, n_features: int = 4, weight_bytes: int = 0) -> Path:
    """A valid ONNX model ``Y = X + W`` (W of ``weight_bytes`` extra padding) at ``path``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((n_features,), dtype=np.float32), "W")
    initializers = [weights]
    if weight_bytes:
        pad = np.random.default_rng().random(weight_bytes // 4, dtype=np.float32)
        initializers.append(numpy_helper.from_array(pad, "pad"))
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "add",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", n_features])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    """A small valid ONNX file."""
    return make_onnx(tmp_path / "add.onnx")
