"""`amlpkg serve --model NAME@ALIAS`: a registered workspace model served as a subprocess.

The real CLI process, the real tritonclient, and in-process ONNX Runtime as the oracle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from amlpkg.packager.repository import materialize
from amlpkg.trainer.quickstart import run_quickstart
from amlpkg.trainer.registry import resolve_model_file
from tests.services import free_port

AMLPKG = str(Path(sys.executable).with_name("amlpkg"))
MODEL = "iris-classifier"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the quickstart's registered model."""
    home = tmp_path_factory.mktemp("ws") / ".amlpkg"
    run_quickstart(home)
    return home


@pytest.fixture(scope="module")
def served(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("log") / "serve.log"
    args = [AMLPKG, "serve", "--model", f"{MODEL}@production", "--home", str(home),
            "--host", "127.0.0.1", "--http-port", str(http_port),
            "--grpc-port", str(grpc_port)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{log.read_text()}"
            time.sleep(0.1)
        yield http_port, grpc_port
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()


def test_served_model_scores_like_onnxruntime(home: Path, served: tuple[int, int]) -> None:
    http_port, grpc_port = served
    _, path = resolve_model_file(f"{MODEL}@production", home=home)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    expected = {
        o.name: v for o, v in zip(session.get_outputs(), session.run(None, {name: x}), strict=True)
    }

    client = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    meta = client.get_model_metadata(MODEL)
    assert meta["versions"] == ["1"]
    inp = httpclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = client.infer(MODEL, [inp])
    for output, value in expected.items():
        np.testing.assert_allclose(result.as_numpy(output), value, rtol=1e-6)

    gclient = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    ginp = grpcclient.InferInput(name, list(x.shape), "FP32")
    ginp.set_data_from_numpy(x)
    gresult = gclient.infer(MODEL, [ginp], model_version="1")
    for output, value in expected.items():
        np.testing.assert_allclose(gresult.as_numpy(output), value, rtol=1e-6)


def test_unknown_model_is_refused_with_a_clear_error(home: Path) -> None:
    proc = subprocess.run(
        [AMLPKG, "serve", "--model", "no-such-model:3", "--home", str(home)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no-such-model" in proc.stderr


def test_model_and_repository_exclude_each_other(home: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [AMLPKG, "serve", "--model", MODEL, "--model-repository", str(tmp_path),
         "--home", str(home)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "exclude each other" in proc.stderr


def test_materialize_lays_out_triton_versions_and_refuses_duplicates(
    home: Path, tmp_path: Path
) -> None:
    placed = materialize([f"{MODEL}:1"], tmp_path, home=home)
    assert [v.ref for v in placed] == [f"{MODEL}:1"]
    assert (tmp_path / MODEL / "1" / "model.onnx").is_file()
    with pytest.raises(Exception, match="named twice"):
        materialize([f"{MODEL}@production"], tmp_path, home=home)
