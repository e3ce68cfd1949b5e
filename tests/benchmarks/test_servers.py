"""Server lifecycle: started on free ports, waited for, and always killed."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.models import INPUT_NAME, BenchModel, build_mlp
from benchmarks.payloads import Wire, build_payload
from benchmarks.servers import (
    Launch,
    Ports,
    ServerDef,
    ServerStartError,
    free_ports,
    serve,
    server_defs,
)
from benchmarks.verify import WrongAnswerError, check_answer


def _http_server(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    argv = [sys.executable, "-m", "http.server", str(ports.http), "--bind", "127.0.0.1"]
    return Launch(argv, "/", {})


def _crashing(model: BenchModel, workdir: Path, ports: Ports) -> Launch:
    argv = [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"]
    return Launch(argv, "/", {})


def _def(launcher: Callable[[BenchModel, Path, Ports], Launch]) -> ServerDef:
    return ServerDef("fake", "python", False, False, Wire.V2_JSON, launcher, lambda: None)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_waits_until_ready_and_kills_after(tmp_path: Path) -> None:
    with serve(_def(_http_server), build_mlp(), tmp_path) as endpoint:
        port = int(endpoint.http_base.rsplit(":", 1)[1])
        assert _listening(port)
        assert endpoint.grpc_target is None
    assert not _listening(port)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with (
        pytest.raises(ServerStartError, match="exited with 3") as info,
        serve(_def(_crashing), build_mlp(), tmp_path),
    ):
        pass
    assert "bad config" in str(info.value)


def test_wire_formats_per_server() -> None:
    defs = {d.name: d for d in server_defs()}
    cnn, mlp = "cnn", build_mlp()
    assert defs["amlpkg"].http_wire(mlp) == "v2-json"
    cnn_model = BenchModel(cnn, mlp.proto, (3, 64, 64))
    assert defs["amlpkg"].http_wire(cnn_model) == "v2-binary"
    assert defs["pytriton"].http_wire(cnn_model) == "v2-binary"
    assert defs["mlserver"].http_wire(cnn_model) == "v2-json"  # no binary extension
    assert defs["litserve"].http_wire(cnn_model) == "litserve-json"
    assert defs["bentoml"].http_wire(mlp) == "bentoml-json"
    assert not defs["bentoml"].v2_http
    assert not defs["litserve"].grpc


def test_every_peer_gets_our_onnxruntime_release() -> None:
    import importlib.metadata

    from benchmarks.peers import peers

    pin = f"onnxruntime=={importlib.metadata.version('onnxruntime')}"
    assert {p.name for p in peers()} == {"mlserver", "litserve", "bentoml", "pytriton"}
    assert all(pin in p.requirements for p in peers())


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("mode", ["aio", "sync"])
def test_the_grpcio_floor_answers_what_onnx_runtime_computes(tmp_path: Path, mode: str) -> None:
    model = build_mlp()
    sample = model.sample(1, seed=3)
    session = ort.InferenceSession(model.proto.SerializeToString())
    (expected,) = session.run(None, {INPUT_NAME: sample})
    floor = next(d for d in server_defs() if d.name == f"grpcio-{mode}-floor")
    with serve(floor, model, tmp_path) as endpoint:
        payload = build_payload(Wire.GRPC_RAW, model.name, sample)
        check_answer(payload, np.asarray(expected), None, endpoint.grpc_target)
        wrong = build_payload(Wire.GRPC_RAW, model.name, model.sample(1, seed=4))
        with pytest.raises(WrongAnswerError, match="differs from in-process"):
            check_answer(wrong, np.asarray(expected), None, endpoint.grpc_target)
