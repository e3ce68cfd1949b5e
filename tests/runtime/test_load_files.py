"""Triton's file override on load (``file:<version>/model.onnx``) through the real tritonclient."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.edge_agent.conftest import add_model
from tests.runtime.conftest import MAX_REQUEST_SIZE, ServerProcess, start_server

# Triton's own form of a config: name and platform are accepted when they match.
TRITON_CONFIG = json.dumps({"name": "m", "platform": "onnxruntime_onnx", "max_batch_size": 0})


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files-repo")
    (root / "m" / "1").mkdir(parents=True)
    (root / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))
    return root


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server(repo, tmp_path_factory.mktemp("files-server"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    client.load_model("m")  # every test starts from the repository's own version 1
    try:
        yield client
    finally:
        client.close()


def answer(client: httpclient.InferenceServerClient, name: str = "m") -> float:
    inp = httpclient.InferInput("X", [1, 4], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    return float(client.infer(name, [inp]).as_numpy("Y")[0, 0])


def test_http_file_override_serves_the_new_model(
    http: httpclient.InferenceServerClient, repo: Path
) -> None:
    assert answer(http) == 1.0
    http.load_model("m", config=TRITON_CONFIG, files={"file:1/model.onnx": add_model(2.0)})
    assert answer(http) == 2.0
    # the user's repository is never written
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == add_model(1.0)
    assert sorted(p.name for p in (repo / "m").iterdir()) == ["1"]
    # a load without files goes back to the repository, as in Triton
    http.load_model("m")
    assert answer(http) == 1.0


def test_grpc_file_override_with_a_new_version(
    http: httpclient.InferenceServerClient, server: ServerProcess
) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        client.load_model("m", config="{}", files={"file:7/model.onnx": add_model(3.0)})
        assert client.get_model_metadata("m").versions == ["7"]
        assert client.is_model_ready("m", "7")
    finally:
        client.close()
    assert answer(http) == 3.0


def test_a_model_only_in_the_override(http: httpclient.InferenceServerClient) -> None:
    http.load_model("fresh", files={"file:2/model.onnx": add_model(5.0)})
    assert answer(http, "fresh") == 5.0
    http.unload_model("fresh")
    assert not http.is_model_ready("fresh")


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_broken_file_keeps_the_old_model_serving(
    http: httpclient.InferenceServerClient, server: ServerProcess, transport: str
) -> None:
    http.load_model("m", config="{}", files={"file:1/model.onnx": add_model(4.0)})
    files = {"file:1/model.onnx": b"not an onnx model"}
    with pytest.raises(InferenceServerException, match="failed to load"):
        if transport == "http":
            http.load_model("m", config="{}", files=files)
        else:
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
            try:
                client.load_model("m", config="{}", files=files)
            finally:
                client.close()
    assert answer(http) == 4.0


@pytest.mark.parametrize(
    "key", ["file:../../evil/model.onnx", "file:1/../../x.onnx", "file:0/model.onnx", "file:1/a"]
)
def test_path_traversal_and_odd_names_are_refused(
    http: httpclient.InferenceServerClient, server: ServerProcess, tmp_path: Path, key: str
) -> None:
    with pytest.raises(InferenceServerException, match="override files must be named"):
        http.load_model("m", config="{}", files={key: add_model(9.0)})
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        with pytest.raises(InferenceServerException, match="override files must be named"):
            client.load_model("m", config="{}", files={key: add_model(9.0)})
    finally:
        client.close()
    assert answer(http) == 1.0


def test_bad_base64_and_oversized_files_get_clear_errors(
    http: httpclient.InferenceServerClient, server: ServerProcess
) -> None:
    url = f"{server.base_url}/v2/repository/models/m/load"
    bad = httpx.post(url, json={"parameters": {"file:1/model.onnx": "@@not base64@@"}})
    assert bad.status_code == 400
    assert "not valid base64" in bad.json()["error"]
    big = base64.b64encode(b"\0" * MAX_REQUEST_SIZE).decode()
    too_large = httpx.post(url, json={"parameters": {"file:1/model.onnx": big}})
    assert too_large.status_code == 413
    bad_config = httpx.post(url, json={"parameters": {"config": '{"name": "other"}'}})
    assert bad_config.status_code == 400
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        with pytest.raises(InferenceServerException, match=r"RESOURCE_EXHAUSTED|larger than max"):
            client.load_model("m", files={"file:1/model.onnx": b"\0" * (MAX_REQUEST_SIZE + 1)})
    finally:
        client.close()
    assert answer(http) == 1.0


def test_override_generations_are_pruned_and_the_temp_folder_removed(tmp_path: Path) -> None:
    import asyncio

    from amlpkg.runtime.dataplane import DataPlane
    from amlpkg.runtime.errors import InvalidInputError

    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))
    with pytest.raises(InvalidInputError, match="inside the model repository"):
        DataPlane.from_repository(repo, override_dir=repo / "overrides")

    async def scenario(override_dir: Path | None) -> Path:
        dp = DataPlane.from_repository(repo, models=[], override_dir=override_dir)
        await dp.start()
        try:
            for offset in (2.0, 3.0):
                await dp.load_model("m", {"file:1/model.onnx": add_model(offset)})
            with pytest.raises(InvalidInputError, match="override files must be named"):
                await dp.load_model("m", {"file:/etc/model.onnx": add_model(4.0)})
            root = dp._repository._overrides()  # the folder under test
            # only the generation the loaded version uses is left
            assert len(list((root / "m").iterdir())) == 1
            await dp.load_model("m")  # back to the repository: no generation is needed
            assert list((root / "m").iterdir()) == []
        finally:
            await dp.stop(drain_timeout=5)
        return root

    chosen = tmp_path / "overrides"
    assert asyncio.run(scenario(chosen)) == chosen
    assert chosen.is_dir()  # a folder the caller chose is the caller's to remove
    temporary = asyncio.run(scenario(None))
    assert not temporary.exists()
    assert sorted(p.name for p in (repo / "m").iterdir()) == ["1"]
