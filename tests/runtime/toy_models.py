"""Toy ONNX models built in code for the runtime tests (no downloads, no training)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from amlpkg.runtime.types import InferInput, InferRequest, RequestedOutput

OPSET = 17

ONNX_TYPE_BY_V2: dict[str, int] = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def identity_model(datatype: str, shape: tuple[int | str, ...] = ("batch", 4)) -> onnx.ModelProto:
    """INPUT0 -> OUTPUT0 unchanged, for any V2 datatype (BYTES as ONNX strings)."""
    elem = ONNX_TYPE_BY_V2[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        f"identity_{datatype.lower()}",
        [helper.make_tensor_value_info("INPUT0", elem, list(shape))],
        [helper.make_tensor_value_info("OUTPUT0", elem, list(shape))],
    )
    return _model(graph)


def add_sub_model(datatype: str = "FP32", width: int = 16) -> onnx.ModelProto:
    """Like Triton's ``simple``: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1."""
    elem = ONNX_TYPE_BY_V2[datatype]
    shape: list[int | str] = ["batch", width]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        "add_sub",
        [
            helper.make_tensor_value_info("INPUT0", elem, shape),
            helper.make_tensor_value_info("INPUT1", elem, shape),
        ],
        [
            helper.make_tensor_value_info("OUTPUT0", elem, shape),
            helper.make_tensor_value_info("OUTPUT1", elem, shape),
        ],
    )
    return _model(graph)


def mlp_model(sizes: tuple[int, ...] = (64, 256, 256, 10), seed: int = 0) -> onnx.ModelProto:
    """A float32 MLP with ReLU between layers: input ``x`` [batch, 64], output ``y``."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = "x"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(
            helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"g{i}" if out != "y" else "y"])
        )
        if out != "y":
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=inits,
    )
    return _model(graph)


def sample(datatype: str, shape: tuple[int, ...] = (2, 4)) -> np.ndarray:
    """Deterministic test data of a V2 datatype."""
    rng = np.random.default_rng(7)
    if datatype == "BYTES":
        return np.array(
            [f"s{i}é".encode() for i in range(int(np.prod(shape)))], dtype=object
        ).reshape(shape)
    if datatype == "BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(datatype)
    if dtype is not None:
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(np.dtype(datatype.lower()))
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(info.dtype)


def save(model: onnx.ModelProto, repo: Path, name: str, version: int = 1) -> Path:
    """Write ``model`` as ``<repo>/<name>/<version>/model.onnx`` and return that path."""
    path = repo / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def fails_on_large_model(threshold: float = 1000.0) -> onnx.ModelProto:
    """``y = x + x[:, i]`` [batch, 4] FP32 where ``i`` is 0, or out of range (an ONNX Runtime
    error at run time) when any element of the whole batch is >= ``threshold``."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
            helper.make_node("GreaterOrEqual", ["mx", "threshold"], ["bad"]),
            helper.make_node("Cast", ["bad"], ["bad_i"], to=TensorProto.INT64),
            helper.make_node("Mul", ["bad_i", "hundred"], ["index"]),
            helper.make_node("Unsqueeze", ["index", "axes0"], ["index1"]),
            helper.make_node("Gather", ["x", "index1"], ["column"], axis=1),
            helper.make_node("Add", ["x", "column"], ["y"]),
        ],
        "fails_on_large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            numpy_helper.from_array(np.array(threshold, dtype=np.float32), "threshold"),
            numpy_helper.from_array(np.array(100, dtype=np.int64), "hundred"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
        ],
    )
    return _model(graph)


def sum_over_batch_model() -> onnx.ModelProto:
    """``y = sum(x, axis 0)`` kept as [1, 4]: an output that does not keep the batch dim."""
    graph = helper.make_graph(
        [
            # The axes are computed (always [0]) so shape inference cannot see the output
            # loses the batch dim: only the server's check at run time can.
            helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
            helper.make_node("Mul", ["mx", "zero"], ["zero_f"]),
            helper.make_node("Cast", ["zero_f"], ["zero_i"], to=TensorProto.INT64),
            helper.make_node("Unsqueeze", ["zero_i", "axes0"], ["axes"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1),
        ],
        "sum_over_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializer=[
            numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
            numpy_helper.from_array(np.array(0, dtype=np.float32), "zero"),
        ],
    )
    return _model(graph)


def write_config(repo: Path, name: str, text: str) -> Path:
    """Write ``<repo>/<name>/config.yaml``."""
    path = repo / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def infer_request(
    model: str,
    inputs: dict[str, np.ndarray],
    version: str | None = None,
    outputs: list[str] | None = None,
) -> InferRequest:
    """A decoded V2 request as the transports hand it to the data plane."""
    from amlpkg.runtime.datatypes import from_numpy

    return InferRequest(
        model_name=model,
        model_version=version,
        inputs=[
            InferInput(name, from_numpy(a.dtype).v2, tuple(a.shape), a)
            for name, a in inputs.items()
        ],
        outputs=None if outputs is None else [RequestedOutput(n) for n in outputs],
    )
