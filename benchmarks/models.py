"""The two benchmark models, built from code with ``onnx.helper`` (no downloads).

* ``mlp``: 64 -> 256 -> 256 -> 10 with ReLU, float32, dynamic batch.
* ``cnn``: a 3x64x64 float32 image through three Conv/ReLU/MaxPool stages and a
  Gemm head, about 18 MFLOP per sample (:func:`count_flops` computes it from the
  graph so the claim is checked, not written down by hand).

Weights come from fixed seeds, so every server in one run scores the same model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class BenchModel:
    """One benchmark model: its name, ONNX graph and per-sample input shape."""

    name: str
    proto: onnx.ModelProto
    sample_shape: tuple[int, ...]

    def sample(self, batch: int = 1, seed: int = 0) -> np.ndarray:
        """A deterministic float32 input batch of shape ``(batch, *sample_shape)``."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch, *self.sample_shape)).astype(np.float32)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name=name)


def _graph_io(shape: tuple[int, ...], out_dim: int) -> tuple[onnx.ValueInfoProto, ...]:
    # "N" names the dynamic batch dimension: servers batch requests along it.
    inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *shape])
    out = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", out_dim])
    return inp, out


def build_mlp(seed: int = 1) -> BenchModel:
    """The MLP 64 -> 256 -> 256 -> 10 with ReLU activations."""
    rng = np.random.default_rng(seed)
    dims = [64, 256, 256, 10]
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = INPUT_NAME
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        # Scaled weights keep activations in a sane range through the layers.
        weight = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        inits += [_init(f"w{i}", weight), _init(f"b{i}", rng.standard_normal(fan_out) * 0.1)]
        last = i == len(dims) - 2
        gemm_out = OUTPUT_NAME if last else f"gemm{i}"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"relu{i}"]))
            current = f"relu{i}"
    inp, out = _graph_io((64,), 10)
    graph = helper.make_graph(nodes, "mlp", [inp], [out], inits)
    return BenchModel("mlp", _finish(graph), (64,))


def build_cnn(seed: int = 2) -> BenchModel:
    """The CNN: 3x64x64 -> 3 x (Conv3x3/ReLU/MaxPool2) -> Flatten -> Gemm(10)."""
    rng = np.random.default_rng(seed)
    channels = [3, 16, 32, 32]
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = INPUT_NAME
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        weight = rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(c_in * 9)
        inits += [_init(f"k{i}", weight), _init(f"kb{i}", rng.standard_normal(c_out) * 0.1)]
        nodes += [
            helper.make_node("Conv", [current, f"k{i}", f"kb{i}"], [f"conv{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]),
            helper.make_node(
                "MaxPool", [f"relu{i}"], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]
            ),
        ]
        current = f"pool{i}"
    flat = channels[-1] * 8 * 8
    inits += [
        _init("wh", rng.standard_normal((flat, 10)) / np.sqrt(flat)),
        _init("bh", rng.standard_normal(10) * 0.1),
    ]
    nodes += [
        helper.make_node("Flatten", [current], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "wh", "bh"], [OUTPUT_NAME]),
    ]
    inp, out = _graph_io((3, 64, 64), 10)
    graph = helper.make_graph(nodes, "cnn", [inp], [out], inits)
    return BenchModel("cnn", _finish(graph), (3, 64, 64))


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    # ONNX Runtime 1.18 (the oldest we support) reads IR version 9.
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def all_models() -> list[BenchModel]:
    """Both benchmark models, in the order the tables list them."""
    return [build_mlp(), build_cnn()]


def count_flops(model: onnx.ModelProto) -> int:
    """Floating-point operations of one sample (batch 1) through Conv and Gemm/MatMul.

    A multiply-add counts as two operations; element-wise ops, pooling and bias
    additions are left out (they are under 1% of these graphs).
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    # Pin the batch dim to 1 so shape inference yields concrete output shapes.
    for value in fixed.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    inferred = shape_inference.infer_shapes(fixed, strict_mode=True)
    shapes: dict[str, list[int]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    flops = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]  # N, C_out, H, W
            kernel = shapes[node.input[1]]  # C_out, C_in/group, kH, kW
            flops += 2 * int(np.prod(out)) * int(np.prod(kernel[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            out = shapes[node.output[0]]
            a = shapes[node.input[0]]
            flops += 2 * int(np.prod(out)) * a[-1]
    return flops


def write_repository(
    root: Path,
    models: list[BenchModel],
    max_batch_size: int = 32,
    max_queue_delay_us: int = 500,
) -> Path:
    """Write ``<root>/<model>/1/model.onnx`` plus a ``config.yaml`` with dynamic batching.

    The config keys are those of ``amlpkg.runtime.model_config``.
    """
    for model in models:
        version_dir = root / model.name / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        onnx.save(model.proto, version_dir / "model.onnx")
        config = (
            f"max_batch_size: {max_batch_size}\n"
            "dynamic_batching:\n"
            f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        )
        (root / model.name / "config.yaml").write_text(config, encoding="utf-8")
    return root


def main() -> None:
    """Print each model's FLOP count per sample: ``python -m benchmarks.models``."""
    for model in all_models():
        print(f"{model.name}: {count_flops(model.proto) / 1e6:.2f} MFLOP/sample")


if __name__ == "__main__":
    main()
