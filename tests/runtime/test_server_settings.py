"""Server settings precedence, the two command lines, and the in-process server."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.runtime.__main__ import build_parser
from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from amlpkg.runtime.server import running
from amlpkg.runtime.settings import load_settings
from tests.runtime import toy_models
from tests.services import free_port


def test_precedence_cli_over_env_over_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMLPKG_SERVER_MODEL_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("AMLPKG_SERVER_HTTP_PORT", "9100")
    monkeypatch.setenv("AMLPKG_SERVER_GRPC_PORT", "9101")
    settings = load_settings(grpc_port=9200, http_port=None)
    assert settings.model_repository == tmp_path
    assert settings.http_port == 9100  # env, since the option was not given
    assert settings.grpc_port == 9200  # the option wins over env
    assert settings.metrics_port is None and settings.host == "0.0.0.0"  # defaults


def test_auth_token_comes_from_env_and_stays_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMLPKG_SERVER_AUTH_TOKEN", "Zq93-secret")
    settings = load_settings(model_repository=tmp_path)
    assert settings.token == "Zq93-secret"
    assert "Zq93-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "model_repository: Field required"),
        ({"http_port": 70000}, "http_port"),
        ({"tls_certfile": "c.pem"}, "tls_certfile and tls_keyfile must be given together"),
        ({"max_request_size": 0}, "max_request_size"),
    ],
)
def test_bad_settings_say_what_to_fix(
    tmp_path: Path, given: dict[str, object], message: str
) -> None:
    if given:
        given = {"model_repository": tmp_path, **given}
    with pytest.raises(InvalidArgumentError) as info:
        load_settings(**given)
    assert message in info.value.message
    assert "AMLPKG_SERVER_" in (info.value.hint or "")


def test_python_m_parser_leaves_unset_options_to_env() -> None:
    args = vars(build_parser().parse_args(["--model-repository", "r", "--http-port", "1"]))
    assert args["http_port"] == 1 and args["grpc_port"] is None and args["host"] is None


def test_python_m_reports_a_bad_repository(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a directory" in result.stderr and "hint:" in result.stderr


@pytest.mark.slow
def test_amlpkg_serve_with_a_metrics_port(tmp_path: Path) -> None:
    """The CLI as a subprocess: serves, exposes /metrics on its own port, exits 0 on SIGINT."""
    toy_models.save(toy_models.identity_model("FP32"), tmp_path / "repo", "identity")
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    amlpkg = Path(sys.executable).with_name("amlpkg")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(amlpkg), "serve", "--model-repository", str(tmp_path / "repo"),
                "--host", "127.0.0.1", "--http-port", str(http_port),
                "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and process.poll() is None and not ready:
            try:
                ready = (
                    httpx.get(f"http://127.0.0.1:{http_port}/v2/health/ready").status_code == 200
                )
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200 and "amlpkg_" in metrics.text
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/v2").status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = log_path.read_text()
    assert f"listening: http://127.0.0.1:{metrics_port}/metrics" in output


@pytest.mark.slow
def test_in_process_server_on_os_chosen_ports(tmp_path: Path) -> None:
    toy_models.save(toy_models.identity_model("INT32"), tmp_path, "identity")
    settings = load_settings(model_repository=tmp_path, host="127.0.0.1", http_port=0, grpc_port=0)

    async def scenario() -> tuple[int, bool, bool]:
        async with running(settings) as server:
            assert server.http_port != 0 and server.grpc_port != 0
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as client:
                status = (await client.get("/v2/models/identity")).status_code
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                ready = (await stub.ModelReady(pb.ModelReadyRequest(name="identity"))).ready
            return status, ready, await server.dataplane.ready()

    assert asyncio.run(scenario()) == (200, True, True)


@pytest.mark.parametrize("which", ["--http-port", "--grpc-port"])
def test_port_in_use_is_a_clear_error(tmp_path: Path, which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = "--grpc-port" if which == "--http-port" else "--http-port"
        result = subprocess.run(
            [
                sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(tmp_path),
                "--host", "127.0.0.1", which, str(port), other, "0",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert (
        f"cannot listen for {'HTTP' if which == '--http-port' else 'gRPC'} on 127.0.0.1:{port}"
        in result.stderr
    )
    assert "hint: pick a free port" in result.stderr
