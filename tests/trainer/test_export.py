"""ONNX export with the parity check, on real scikit-learn, PyTorch and ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amlpkg
from amlpkg.errors import InvalidArgumentError
from amlpkg.trainer.export import export_onnx, verify_onnx_parity
from amlpkg.trainer.parity import ExportParityError, compare
from amlpkg.trainer.registry import register
from amlpkg.trainer.signature import inspect_onnx
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs
from tests.trainer.conftest import require_module


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def _run_onnx(path: Path, x: np.ndarray) -> list[Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, {session.get_inputs()[0].name: x}))


@pytest.mark.parametrize("kind", ["logreg", "forest"])
def test_sklearn_classifier_parity_and_tensor_outputs(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path, kind: str
) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris
    model: Any = (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if kind == "logreg"
        else RandomForestClassifier(n_estimators=10, random_state=0)
    ).fit(x, y)
    result = export_onnx(model, x, path=tmp_path / "m.onnx", log=False)
    assert result.framework == "sklearn" and result.exporter == "skl2onnx"
    assert result.parity.ok
    assert result.max_abs_err <= 1e-5
    assert {o.name for o in result.parity.outputs} == {"label", "probabilities"}
    assert result.uri is None  # nothing logged without a run
    label, proba = _run_onnx(result.path, x.astype(np.float32))
    # ZipMap is off: probabilities are a plain tensor the V2 protocol can carry.
    assert isinstance(proba, np.ndarray) and proba.shape == (len(x), 3)
    assert (label == model.predict(x.astype(np.float32))).all()


def test_sklearn_regressor_parity(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    x, y = iris
    model = Ridge().fit(x, y * 100.0)
    result = export_onnx(model, x[:50], path=tmp_path / "r.onnx", log=False)
    assert result.parity.ok and result.parity.outputs[0].name == "variable"
    signature, opset = inspect_onnx(result.path)
    assert opset == result.opset and opset is not None
    assert signature["inputs"][0]["shape"][1] == 4


def test_export_logs_the_model_and_parity_to_the_active_run(
    iris: tuple[np.ndarray, np.ndarray], home: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    run = amlpkg.start_run("export", home=home)
    result = export_onnx(LogisticRegression(max_iter=1000).fit(x, y), x, name="iris")
    assert result.run_id == run.id
    assert result.uri == f"runs:/{run.id}/model/iris.onnx"
    record = queries.get_run(run.workspace, run.id)
    assert record.tags["onnx_parity"] == "passed"
    assert record.metrics["onnx_parity_max_abs_err"] == pytest.approx(result.max_abs_err)
    version = register("iris", result.uri, workspace=run.workspace)
    assert version.run_id == run.id
    amlpkg.end_run()


def _torch_mlp() -> Any:
    require_module("torch")
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3), torch.nn.Softmax(-1)
    )


@pytest.mark.torch
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_torch_parity_with_dynamic_batch(tmp_path: Path, exporter: str) -> None:
    import torch

    model = _torch_mlp()
    sample = torch.randn(5, 8)
    result = export_onnx(model, sample, path=tmp_path / "t.onnx", exporter=exporter, log=False)
    assert result.framework == "torch" and result.exporter == exporter
    assert result.parity.ok and result.parity.rtol == 1e-4 and result.parity.atol == 1e-5
    signature, _ = inspect_onnx(result.path)
    assert signature["inputs"][0]["name"] == "input"
    assert signature["outputs"][0]["name"] == "output"
    assert not isinstance(signature["inputs"][0]["shape"][0], int) or (
        signature["inputs"][0]["shape"][0] == -1
    )
    # The batch axis is dynamic: another batch size runs and matches.
    batch = torch.randn(11, 8)
    (out,) = _run_onnx(result.path, batch.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(out, model(batch).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.torch
def test_altered_weights_are_caught(tmp_path: Path) -> None:
    import onnx
    import torch
    from onnx import numpy_helper

    model = _torch_mlp()
    sample = torch.randn(4, 8)
    result = export_onnx(model, sample, path=tmp_path / "t.onnx", log=False)
    onx = onnx.load(str(result.path))
    init = onx.graph.initializer[0]
    weights = numpy_helper.to_array(init).copy()
    weights.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(onx, str(tmp_path / "tampered.onnx"))
    assert verify_onnx_parity(result.path, model, sample).ok
    with pytest.raises(ExportParityError) as info:
        verify_onnx_parity(tmp_path / "tampered.onnx", model, sample)
    assert not info.value.report.ok
    assert info.value.report.max_abs_err > 1e-5


class _Drifting:
    """A module whose eager output changes after export: the ONNX graph cannot follow."""

    @staticmethod
    def make() -> Any:
        import torch

        class Drifting(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(4, 2)
                self.calls = 0

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                self.calls += 1  # Python state: baked into the graph as a constant
                return self.linear(x) * float(self.calls)

        return Drifting()


@pytest.mark.torch
def test_diverging_export_raises_and_logs_nothing(home: Path) -> None:
    require_module("torch")
    import torch

    run = amlpkg.start_run(home=home)
    with pytest.raises(ExportParityError, match="differs"):
        export_onnx(_Drifting.make(), torch.randn(3, 4), exporter="torchscript")
    assert store_runs.list_artifacts(run.workspace, run.id) == []
    assert queries.get_run(run.workspace, run.id).tags["onnx_parity"] == "failed"
    amlpkg.end_run()


def test_label_mismatch_is_exact_and_shapes_must_agree() -> None:
    assert compare("label", [1, 2], [1, 3], rtol=1, atol=1, exact=True).mismatched == 1
    assert not compare("x", np.zeros((2, 2)), np.zeros((3,)), rtol=0, atol=0).ok
    assert compare("x", [1.0, 0.0], [1.00001, 0.0], rtol=1e-4, atol=0).ok
    assert not compare("x", [1.0], [float("nan")], rtol=1, atol=1).ok


def test_unsupported_model_and_bad_sample_are_refused(iris: tuple[np.ndarray, np.ndarray]) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    with pytest.raises(InvalidArgumentError, match="cannot export"):
        export_onnx(object(), x, log=False)
    with pytest.raises(InvalidArgumentError, match="2-D"):
        export_onnx(LogisticRegression(max_iter=1000).fit(x, y), x[0], log=False)


@pytest.mark.torch
def test_torch_inputs_are_named_after_forwards_parameters(tmp_path: Path) -> None:
    """A transformer-like forward(input_ids, attention_mask): clients see those names."""
    require_module("torch")
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(50, 8)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.embed(input_ids) * attention_mask.unsqueeze(-1)
            return hidden.sum(1) / attention_mask.sum(1, keepdim=True)

    torch.manual_seed(0)
    ids = torch.randint(0, 50, (3, 6))
    mask = torch.ones(3, 6)
    result = export_onnx(
        Encoder(), (ids, mask), path=tmp_path / "e.onnx", exporter="torchscript", log=False
    )
    signature, _ = inspect_onnx(result.path)
    assert [i["name"] for i in signature["inputs"]] == ["input_ids", "attention_mask"]
