"""The variants ``amlpkg optimize`` makes load and serve in the runtime as registered."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

from amlpkg.packager.optimize import Limits, optimize, serving_config, variant_file
from amlpkg.packager.optimize.data import synthesize
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.types import InferInput, InferRequest
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import register, resolve_model_file
from tests.packager.test_optimize import make_mlp


def serve_once(repo: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    async def main() -> dict[str, np.ndarray]:
        dp = DataPlane.from_repository(repo, environ={})
        await dp.start()
        try:
            response = await dp.infer(
                InferRequest("mlp", None, [InferInput("X", "FP32", x.shape, x)])
            )
            return {o.name: o.data for o in response.outputs}
        finally:
            await dp.stop(drain_timeout=5)

    return asyncio.run(main())


def test_every_cpu_variant_serves_in_the_runtime(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        version = register("mlp", make_mlp(tmp_path / "mlp.onnx"), workspace=ws)
        # The first rows of the synthetic sample optimize checked accuracy on.
        x = synthesize(version.signature).inputs["X"][:8]
        report = optimize(
            "mlp:1",
            workspace=ws,
            limits=Limits(max_slowdown=1000.0),
            budget_s=0.01,
            batch_sizes=(1,),
        )
        _, original = resolve_model_file("mlp:1", workspace=ws)
        want = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"]).run(
            None, {"X": x}
        )
        assert len(report.variants) == 3
        for variant in report.variants:
            repo = tmp_path / f"repo-{variant.kind}"
            (repo / "mlp" / "1").mkdir(parents=True)
            shutil.copyfile(variant_file(ws, variant), repo / "mlp" / "1" / "model.onnx")
            (repo / "mlp" / "config.yaml").write_text(yaml.safe_dump(serving_config(variant)))
            served = serve_once(repo, x)
            direct = ort.InferenceSession(
                str(variant_file(ws, variant)), providers=["CPUExecutionProvider"]
            ).run(["label", "probabilities"], {"X": x})
            np.testing.assert_allclose(served["probabilities"], direct[1], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(served["label"], direct[0])
            # On rows of its validation sample: within the error optimize recorded.
            error = float(np.max(np.abs(served["probabilities"] - want[1])))
            assert error <= variant.accuracy["max_abs_error"] + 1e-5
