"""The edge agent pushing models to a SEPARATE scoring module (a real runtime process)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from amlpkg.collector.server import running_collector
from amlpkg.edge_agent.desired import DesiredModel
from amlpkg.edge_agent.remote import RemoteBackend
from amlpkg.edge_agent.swap import ModelSwapper
from amlpkg.errors import (
    FailedPreconditionError,
    IntegrityError,
    InvalidArgumentError,
    UnauthenticatedError,
)
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.conftest import add_model, sha256, write
from tests.edge_agent.test_standalone import desired, infer, serves_one_then_two, wait_for
from tests.edge_agent.test_swap import desired_for, running_scorer
from tests.runtime.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def scoring(tmp_path: Path) -> Iterator[ServerProcess]:
    """The scoring module: ``python -m amlpkg.runtime`` over an empty repository."""
    repo = tmp_path / "scoring-repo"
    repo.mkdir()
    server = start_server(repo, tmp_path)
    try:
        yield server
    finally:
        server.stop()


def ready_models(server: ServerProcess) -> list[tuple[str, str]]:
    index = httpx.post(f"{server.base_url}/v2/repository/index", json={"ready": True}).json()
    return [(row["name"], row["version"]) for row in index]


def gather_out_of_range_model() -> bytes:
    """Loads fine, fails every inference (index 10 of a 4-wide axis): a smoke-test failure."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["X", "I"], ["Y"], axis=1)],
        "bad_gather",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(np.array([10], dtype=np.int64), "I")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_remote_swap_under_load_fails_no_request(tmp_path: Path, scoring: ServerProcess) -> None:
    asyncio.run(_remote_swap_under_load(tmp_path, scoring))


async def _remote_swap_under_load(tmp_path: Path, scoring: ServerProcess) -> None:
    swapper = ModelSwapper(RemoteBackend(scoring.base_url), None, tmp_path / "state")
    assert await swapper.apply(desired_for(tmp_path, 1.0, 1))
    async with running_scorer(scoring.http_port) as scorer:
        await scorer.answers(20)
        assert await swapper.apply(desired_for(tmp_path, 2.0, 2))
        await scorer.answers(20)
        # a tampered download and a broken model are refused while the scorer runs
        good = desired_for(tmp_path, 3.0, 3)
        tampered = DesiredModel(name="m", version="3", sha256=sha256(b"other"), url=good.url)
        with pytest.raises(IntegrityError):
            await swapper.apply(tampered)
        garbage = b"not an onnx model"
        broken_src = write(tmp_path, "broken.onnx", garbage)
        broken = DesiredModel(
            name="m", version="4", sha256=sha256(garbage), url=broken_src.as_uri()
        )
        with pytest.raises(FailedPreconditionError, match="load/smoke check"):
            await swapper.apply(broken)
        await scorer.answers(20)
    assert scorer.failures == []
    assert scorer.seen == {1.0, 2.0}
    assert swapper.state.current is not None and swapper.state.current.version == "2"
    assert "load/smoke check" in (swapper.state.last_error or "")
    # the hidden candidate is gone; only the served version is ready on the scoring module
    assert ready_models(scoring) == [("m", "2")]
    await swapper.rollback()
    assert infer(scoring.http_port) == 1.0
    assert ready_models(scoring) == [("m", "1")]
    # telemetry reads the scoring module's /metrics
    families = {f.name for f in await swapper.backend.metric_families()}
    assert "amlpkg_inference_requests" in families


def test_a_model_failing_after_the_switch_is_rolled_back(
    tmp_path: Path, scoring: ServerProcess
) -> None:
    async def scenario() -> None:
        backend = RemoteBackend(scoring.base_url)
        swapper = ModelSwapper(backend, None, tmp_path / "state", candidate_check=False)
        await swapper.apply(desired_for(tmp_path, 1.0, 1))
        data = gather_out_of_range_model()
        src = write(tmp_path, "gather.onnx", data)
        bad = DesiredModel(name="m", version="2", sha256=sha256(data), url=src.as_uri())
        with pytest.raises(FailedPreconditionError, match="after the switch") as caught:
            await swapper.apply(bad)
        assert caught.value.hint is not None and "rolled back to m:1" in caught.value.hint
        assert swapper.state.current is not None and swapper.state.current.version == "1"
        assert infer(scoring.http_port) == 1.0
        assert ready_models(scoring) == [("m", "1")]
        # a scoring module that lost its models (restart) gets the current one again
        await backend.remove("m")
        assert await swapper.resync()
        assert infer(scoring.http_port) == 1.0
        assert not await swapper.resync()
        # ... or one serving another version (the model baked into its image)
        await backend.serve("m", 9, write(tmp_path, "other.onnx", add_model(9.0)), {})
        assert infer(scoring.http_port) == 9.0
        assert await swapper.resync()
        assert ready_models(scoring) == [("m", "1")]

    asyncio.run(scenario())


def test_a_scoring_module_with_auth_needs_the_token(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    server = start_server(repo, tmp_path, env={"AMLPKG_SERVER_AUTH_TOKEN": "t0ken"})

    async def scenario() -> None:
        anonymous = ModelSwapper(RemoteBackend(server.base_url), None, tmp_path / "a")
        with pytest.raises(UnauthenticatedError, match="HTTP 401") as caught:
            await anonymous.apply(desired_for(tmp_path, 1.0, 1))
        assert caught.value.hint is not None and "AMLPKG_EDGE_SCORING_TOKEN" in caught.value.hint
        backend = RemoteBackend(server.base_url, token="t0ken")
        swapper = ModelSwapper(backend, None, tmp_path / "b")
        assert await swapper.apply(desired_for(tmp_path, 1.0, 1))
        assert await backend.providers("m") == ["cpu"]
        assert [f.name for f in await backend.metric_families()]

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_bad_scoring_url_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not an http"):
        RemoteBackend("scoring:8000")


def test_agent_process_drives_the_scoring_module(tmp_path: Path, scoring: ServerProcess) -> None:
    state_file = tmp_path / "desired.json"
    state_file.write_text(json.dumps(desired(tmp_path, 1.0, 1)))
    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        cmd = [
            sys.executable, "-m", "amlpkg.edge_agent",
            "--standalone", str(state_file),
            "--scoring-url", scoring.base_url,
            "--state-dir", str(tmp_path / "agent"),
            "--device-id", "dev-r", "--deployment-id", "dep-r:1",
            "--telemetry-url", collector.url, "--poll-interval", "0.3",
            "--log-level", "warning",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            serves_one_then_two(tmp_path, state_file, scoring.http_port, proc)
            count = (
                "SELECT COALESCE(SUM(requests), 0) FROM telemetry"
                " WHERE device_id = 'dev-r' AND model_name = 'm'"
            )
            wait_for(lambda: ws.conn.execute(count).fetchone()[0] >= 2, 30, "telemetry", proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, output
        state = json.loads((tmp_path / "agent" / "reported.json").read_text())
        assert state["providers"] == ["cpu"]
        assert state["deployment"] == "dep-r:1"
    # the agent hosted no runtime of its own: no local repository was made
    assert not (tmp_path / "agent" / "repository").exists()


def test_the_iotedge_manifest_starts_the_agent_in_remote_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amlpkg.edge_agent.__main__ import build_parser
    from amlpkg.packager.deploy import iotedge_manifest as edge

    opts = edge.EdgeOptions(
        name="plant",
        image="registry.local/plant:1",
        model={"name": "m", "version": "1", "sha256": "0" * 64, "url": "https://x/m.onnx"},
        agent_image="amlpkg-edge-agent:latest",
        deployment_id="plant:3",
    )
    modules = edge.deployment_manifest(opts)["modulesContent"]["$edgeAgent"]["properties.desired"]
    agent = modules["modules"][edge.AGENT_MODULE]
    assert json.loads(agent["settings"]["createOptions"])["Cmd"] == [
        "python", "-m", "amlpkg.edge_agent",
    ]  # fmt: skip
    for key, value in agent["env"].items():
        monkeypatch.setenv(key, value["value"])
    args = build_parser().parse_args([])
    # the agent reaches the scoring module by its module name on the port it serves
    assert args.scoring_url == "http://plant:8000"
    assert (
        "8000/tcp"
        in json.loads(modules["modules"]["plant"]["settings"]["createOptions"])["ExposedPorts"]
    )
    assert args.deployment_id == "plant:3"
    assert args.state_dir == Path("/var/lib/amlpkg")
