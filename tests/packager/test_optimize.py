"""``amlpkg optimize`` as a library: real ONNX Runtime, real models, a real workspace."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize import (
    Limits,
    best_variant,
    list_variants,
    optimize,
    variant_file,
)
from amlpkg.packager.optimize.measure import available_providers
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.lineage_view import lineage
from amlpkg.trainer.registry import register, resolve_model_file

# Timing is not what these tests check: keep it short and never refuse on speed.
FAST: dict[str, Any] = {"budget_s": 0.01, "batch_sizes": (1, 8)}
ANY_SPEED = 1000.0


def make_mlp(path: Path, *, outlier: float | None = None, seed: int = 0) -> Path:
    """A 16 -> 64 -> 3 MLP classifier: ``label`` (argmax) and ``probabilities`` outputs.

    ``outlier`` puts one huge weight on a hidden unit the output ignores: per-tensor
    int8 then rounds every other first-layer weight to zero, destroying the model.
    """
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((16, 64)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((64, 3)) * 0.5).astype(np.float32)
    if outlier is not None:
        w1[0, -1] = outlier
        w2[-1, :] = 0.0
    inits = [
        numpy_helper.from_array(w1, "W1"),
        numpy_helper.from_array(np.full(64, 0.1, np.float32), "B1"),
        numpy_helper.from_array(w2, "W2"),
        numpy_helper.from_array(np.zeros(3, np.float32), "B2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "B1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["l0"]),
        helper.make_node("Add", ["l0", "B2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 16])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_add(path: Path) -> Path:
    """``Y = X + 1``: nothing a quantizer can quantize."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "add",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.ones(4, np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with open_workspace(tmp_path / "ws") as workspace:
        register("mlp", make_mlp(tmp_path / "mlp.onnx"), workspace=workspace)
        register("broken", make_mlp(tmp_path / "bad.onnx", outlier=1000.0), workspace=workspace)
        yield workspace


def stored_state(ws: Workspace) -> tuple[int, int, list[str]]:
    rows = ws.conn.execute("SELECT COUNT(*) FROM variants").fetchone()[0]
    edges = ws.conn.execute(
        "SELECT COUNT(*) FROM lineage_edges WHERE dst_kind = 'variant'"
    ).fetchone()[0]
    return rows, edges, sorted(ws.artifacts.iter_digests())


def op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_graph_and_int8_variants_registered_with_measurements_and_accuracy(ws: Workspace) -> None:
    report = optimize("mlp:1", workspace=ws, limits=Limits(max_slowdown=ANY_SPEED), **FAST)
    made = {(v.kind, v.precision): v for v in report.variants}
    assert set(made) == {("graph", "fp32"), ("int8-dynamic", "int8"), ("int8-static", "int8")}
    assert report.measured and report.provider == "CPUExecutionProvider"
    assert report.synthetic_validation and report.validation == "synthetic"
    assert set(report.baseline["batches"]) == {"1", "8"}
    for variant in made.values():
        batches = variant.measurements["batches"]
        assert set(batches) == {"1", "8"}
        assert all(b["p50_ms"] > 0 and b["throughput_per_s"] > 0 for b in batches.values())
        assert variant.measurements["speedup"] > 0 and variant.measurements["load_ms"] > 0
        assert 0 <= variant.accuracy["max_abs_error"] < 0.1
        assert variant.accuracy["agreement"] > 0.9 and variant.accuracy["synthetic"] is True
        assert variant.providers == [{"name": "cpu", "options": {}}]
    assert made[("graph", "fp32")].accuracy["max_abs_error"] < 1e-5
    # The int8 files really are quantized; the graph file is the extended-level graph.
    assert "MatMulInteger" in op_types(variant_file(ws, made[("int8-dynamic", "int8")]))
    assert "QuantizeLinear" in op_types(variant_file(ws, made[("int8-static", "int8")]))
    assert made[("int8-dynamic", "int8")].size < made[("graph", "fp32")].size
    assert made[("graph", "fp32")].recipe["graph_level"] == "extended"
    # Rows and lineage edges are in the workspace.
    stored = {v.id: v for v in list_variants(ws, "mlp:1")}
    assert set(stored) == {v.id for v in report.variants}
    assert (
        stored[made[("int8-static", "int8")].id].accuracy == made[("int8-static", "int8")].accuracy
    )
    chain = lineage("mlp:1", workspace=ws)
    assert {e["dst_id"] for e in chain["downstream"] if e["dst_kind"] == "variant"} == set(stored)
    assert report.chosen is None and best_variant(ws, "mlp:1", "cpu") is None  # no --auto


def test_int8_that_destroys_accuracy_is_refused_and_not_chosen(ws: Workspace) -> None:
    report = optimize(
        "broken:1", workspace=ws, auto=True, limits=Limits(max_slowdown=ANY_SPEED), **FAST
    )
    by_kind = {v.kind: v for v in report.variants}
    for kind in ("int8-dynamic", "int8-static"):
        refused = by_kind[kind]
        assert not refused.accepted and not refused.chosen
        assert "less accurate than allowed" in refused.reason
        assert refused.accuracy["max_abs_error"] > 0.1
        assert refused.accuracy["agreement"] < 0.9
    assert by_kind["graph"].accepted and by_kind["graph"].chosen
    best = best_variant(ws, "broken:1", "cpu")
    assert best is not None and best.kind == "graph"
    assert "fastest accepted cpu variant" in (report.choice or "")


def test_impossible_tolerance_refuses_all_and_auto_keeps_the_original(ws: Workspace) -> None:
    report = optimize(
        "mlp:1",
        workspace=ws,
        precision="int8",
        auto=True,
        limits=Limits(max_abs_error=1e-12, max_slowdown=ANY_SPEED),
        **FAST,
    )
    assert {v.kind for v in report.variants} == {"int8-dynamic", "int8-static"}
    assert all(not v.accepted and "max abs error" in v.reason for v in report.variants)
    assert report.chosen is None and "serve the original" in (report.choice or "")
    assert best_variant(ws, "mlp:1", "cpu") is None
    assert len(list_variants(ws, "mlp:1")) == 2  # refused variants are still recorded


def test_auto_choice_is_recorded_and_a_later_choice_replaces_it(ws: Workspace) -> None:
    limits = Limits(max_slowdown=ANY_SPEED, max_accuracy_drop=0.2)
    first = optimize("mlp:1", workspace=ws, auto=True, limits=limits, **FAST)
    assert first.chosen is not None and first.chosen.accepted
    assert first.chosen.measurements["speedup"] == max(
        v.measurements["speedup"] for v in first.variants if v.accepted
    )
    second = optimize("mlp:1", workspace=ws, auto=True, precision="fp32", limits=limits, **FAST)
    assert second.chosen is not None and second.chosen.kind == "graph"
    chosen = [v for v in list_variants(ws, "mlp:1", target="cpu") if v.chosen]
    assert [v.id for v in chosen] == [second.chosen.id]
    assert chosen[0].reason.startswith("chosen by --auto: fastest accepted cpu variant")
    earlier = next(v for v in list_variants(ws, "mlp:1") if v.id == first.chosen.id)
    assert earlier.reason.startswith(f"no longer chosen: --auto chose {second.chosen.id} later")
    best = best_variant(ws, "mlp", "cpu")
    assert best is not None and best.id == second.chosen.id
    assert variant_file(ws, best).stat().st_size == best.size


def test_validation_labels_give_a_task_metric(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((48, 16)).astype(np.float32)
    # Labels: the original's own predictions, so its accuracy is exactly 1.
    import onnxruntime as ort

    blob = resolve_model_file("mlp:1", workspace=ws)[1]
    labels = ort.InferenceSession(str(blob), providers=["CPUExecutionProvider"]).run(
        ["label"], {"X": x}
    )[0]
    np.savez(tmp_path / "val.npz", X=x, y=labels)
    report = optimize(
        "mlp:1",
        workspace=ws,
        validation=tmp_path / "val.npz",
        limits=Limits(max_slowdown=ANY_SPEED, max_accuracy_drop=0.2),
        **FAST,
    )
    assert not report.synthetic_validation and report.validation.endswith("val.npz")
    assert report.baseline["accuracy"] == 1.0
    for variant in report.variants:
        assert variant.accuracy["task_metric"] == "accuracy"
        assert variant.accuracy["accuracy_original"] == 1.0
        assert variant.accuracy["rows"] == 48
    # Without --calibration, static int8 calibrates on the validation file.
    assert report.calibration is not None and report.calibration.endswith("val.npz")


def test_calibration_file_is_used(ws: Workspace, tmp_path: Path) -> None:
    x = np.random.default_rng(3).standard_normal((20, 16)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", X=x)
    report = optimize(
        "mlp:1",
        workspace=ws,
        precision="int8",
        calibration=tmp_path / "calib.npz",
        limits=Limits(max_slowdown=ANY_SPEED),
        **FAST,
    )
    static = next(v for v in report.variants if v.kind == "int8-static")
    assert static.recipe["calibration"] == str(tmp_path / "calib.npz")


def test_sklearn_classifier_with_real_labels(ws: Workspace, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is not what this test is about
        model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(x, y)
    proto = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    (tmp_path / "iris.onnx").write_bytes(proto.SerializeToString())
    register("iris-mlp", tmp_path / "iris.onnx", workspace=ws)
    np.savez(tmp_path / "iris.npz", X=x, y=y)
    report = optimize(
        "iris-mlp:1",
        workspace=ws,
        validation=tmp_path / "iris.npz",
        auto=True,
        limits=Limits(max_slowdown=ANY_SPEED, max_accuracy_drop=0.05),
        **FAST,
    )
    assert report.baseline["accuracy"] > 0.9
    kinds = {v.kind for v in report.variants}
    assert "graph" in kinds and "int8-dynamic" in kinds
    for variant in report.variants:
        assert variant.accuracy["accuracy"] > 0.85
    assert report.chosen is not None and report.chosen.accepted


def test_model_without_matmul_gets_no_dynamic_int8(ws: Workspace, tmp_path: Path) -> None:
    register("adder", make_add(tmp_path / "add.onnx"), workspace=ws)
    report = optimize("adder:1", workspace=ws, limits=Limits(max_slowdown=ANY_SPEED), **FAST)
    # Dynamic int8 only quantizes MatMul/Gemm/Conv-like ops; static QDQ also takes Add.
    assert [v.kind for v in report.variants] == ["graph", "int8-static"]
    assert [s["kind"] for s in report.skipped] == ["int8-dynamic"]
    assert "no operator ONNX Runtime quantizes" in report.skipped[0]["reason"]
    assert len(list_variants(ws, "adder:1")) == 2


def test_gpu_target_is_not_measured_with_cpu_numbers(ws: Workspace) -> None:
    if "CUDAExecutionProvider" in available_providers():
        pytest.skip("this machine has CUDA; the not-measurable path needs one without")
    report = optimize("mlp:1", workspace=ws, target="cuda", auto=True, **FAST)
    assert not report.measured and report.baseline == {}
    assert "cannot measure here" in (report.measure_note or "")
    assert "CUDAExecutionProvider" in (report.measure_note or "")
    by_kind = {v.kind: v for v in report.variants}
    assert set(by_kind) == {"graph", "fp16"}
    for variant in report.variants:
        assert not variant.accepted and variant.reason.startswith("not measured")
        assert "batches" not in variant.measurements and "speedup" not in variant.measurements
        assert variant.providers[0]["name"] == "cuda"
    fp16 = onnx.load(str(variant_file(ws, by_kind["fp16"])))
    assert any(i.data_type == TensorProto.FLOAT16 for i in fp16.graph.initializer)
    assert fp16.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # io kept fp32
    assert by_kind["fp16"].accuracy.get("max_abs_error", 0.0) < 0.05
    assert report.chosen is None and best_variant(ws, "mlp:1", "cuda") is None


def test_static_int8_calibrates_on_a_sample_the_run_kept(ws: Workspace, tmp_path: Path) -> None:
    from amlpkg.trainer import tracking

    x = np.random.default_rng(11).standard_normal((32, 16)).astype(np.float32)
    np.savez(tmp_path / "calibration.npz", X=x)
    np.savez(tmp_path / "unrelated.npz", weights=np.ones(3))  # not for this model: skipped
    run = tracking.start_run("optimize-test", home=ws.home)
    try:
        run.log_artifact(tmp_path / "unrelated.npz", "data")
        run.log_artifact(tmp_path / "calibration.npz", "data")
    finally:
        tracking.end_run()
    register("from-run", make_mlp(tmp_path / "run.onnx"), run=run.id, workspace=ws)
    report = optimize(
        "from-run:1", workspace=ws, precision="int8", limits=Limits(max_slowdown=ANY_SPEED), **FAST
    )
    assert report.calibration == f"run {run.id}:data/calibration.npz"
    static = next(v for v in report.variants if v.kind == "int8-static")
    assert static.recipe["calibration"] == report.calibration
    assert static.recipe["quantization"]["format"] == "QDQ"


def test_fixed_batch_models_are_measured_at_their_batch(ws: Workspace, tmp_path: Path) -> None:
    path = make_mlp(tmp_path / "fixed.onnx")
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 4
    onnx.save(model, str(path))
    register("fixed", path, workspace=ws)
    report = optimize(
        "fixed:1", workspace=ws, precision="fp32", limits=Limits(max_slowdown=ANY_SPEED), **FAST
    )
    assert set(report.baseline["batches"]) == {"4"}
    assert report.variants[0].accuracy["rows"] % 4 == 0
    np.savez(tmp_path / "odd.npz", X=np.zeros((6, 16), np.float32))
    with pytest.raises(InvalidArgumentError, match="fixed batch of 4"):
        optimize("fixed:1", workspace=ws, validation=tmp_path / "odd.npz", **FAST)


def test_markdown_section_for_the_benchmarks(ws: Workspace) -> None:
    from amlpkg.packager.optimize.summary import markdown_section

    report = optimize(
        "mlp:1", workspace=ws, auto=True, limits=Limits(max_slowdown=ANY_SPEED), **FAST
    )
    text = markdown_section(report)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 1 + len(report.variants)  # header, rule, original, variants
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "p50 ms @1" in table[0] and "samples/s @8" in table[0]
    assert "`--auto`:" in text and "synthetic, from the signature" in text


def test_ml_domain_only_model_gets_no_int8_but_a_clear_reason(
    ws: Workspace, tmp_path: Path
) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    proto = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    (tmp_path / "logreg.onnx").write_bytes(proto.SerializeToString())
    register("logreg", tmp_path / "logreg.onnx", workspace=ws)
    report = optimize("logreg:1", workspace=ws, limits=Limits(max_slowdown=ANY_SPEED), **FAST)
    assert [v.kind for v in report.variants] == ["graph"]
    assert [s["kind"] for s in report.skipped] == ["int8-dynamic", "int8-static"]
    assert all("ai.onnx.ml.LinearClassifier" in s["reason"] for s in report.skipped)


def test_concurrent_auto_runs_leave_exactly_one_chosen(ws: Workspace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def run_once(_: int) -> str:
        with open_workspace(ws.home) as own:  # one connection per writer, as processes do
            report = optimize(
                "mlp:1",
                workspace=own,
                precision="fp32",
                auto=True,
                limits=Limits(max_slowdown=ANY_SPEED),
                **FAST,
            )
            assert report.chosen is not None
            return report.chosen.id

    with ThreadPoolExecutor(max_workers=2) as pool:
        chosen_ids = set(pool.map(run_once, range(2)))
    assert len(chosen_ids) == 2
    chosen = [v.id for v in list_variants(ws, "mlp:1", target="cpu") if v.chosen]
    assert len(chosen) == 1 and chosen[0] in chosen_ids
    best = best_variant(ws, "mlp:1", "cpu")
    assert best is not None and best.id == chosen[0]


def test_a_provider_that_falls_back_to_cpu_is_not_measured(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlpkg.packager.optimize import measure

    if "CUDAExecutionProvider" in available_providers():
        pytest.skip("this machine really has CUDA")
    # Claim CUDA is there: ONNX Runtime then silently builds CPU sessions, which
    # optimize must notice rather than report CPU numbers as CUDA numbers.
    monkeypatch.setattr(
        measure, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    report = optimize("mlp:1", workspace=ws, target="cuda", auto=True, **FAST)
    assert not report.measured and report.baseline == {}
    assert "did not initialize here" in (report.measure_note or "")
    assert all(not v.accepted and "batches" not in v.measurements for v in report.variants)
    assert report.chosen is None


def test_cuda_target_is_measured_on_cuda_when_present(ws: Workspace) -> None:
    # No GPU in CI (DESIGN.md): this runs on a machine with onnxruntime-gpu and a GPU.
    if "CUDAExecutionProvider" not in available_providers():
        pytest.skip("needs onnxruntime-gpu and an NVIDIA GPU")
    report = optimize(
        "mlp:1", workspace=ws, target="cuda", auto=True, limits=Limits(max_slowdown=ANY_SPEED)
    )
    assert report.measured and report.baseline["provider"] == "CUDAExecutionProvider"
    for variant in report.variants:
        assert variant.measurements["provider"] == "CUDAExecutionProvider"
        assert set(variant.measurements["batches"]) == {"1", "8", "32"}
    fp16 = next(v for v in report.variants if v.kind == "fp16")
    assert fp16.accuracy["max_abs_error"] < 0.05
    assert report.chosen is not None
