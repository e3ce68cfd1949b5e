"""TLS and token auth on both transports, against a real server process."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from tests.runtime import toy_models
from tests.runtime.conftest import ServerProcess, start_server

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token"


def make_self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Self-signed certificate and key."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_server(
    tmp_path_factory: pytest.TempPathFactory, cert: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    """A server with TLS on both transports and a token (from the environment)."""
    repo = tmp_path_factory.mktemp("secure-repo")
    toy_models.save(toy_models.identity_model("FP32"), repo, "identity")
    running = start_server(
        repo,
        tmp_path_factory.mktemp("secure"),
        "--tls-certfile", str(cert[0]),
        "--tls-keyfile", str(cert[1]),
        env={"AMLPKG_SERVER_AUTH_TOKEN": TOKEN},
        scheme="https",
        verify=str(cert[0]),
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def test_rest_needs_the_token_except_for_health(
    secure_server: ServerProcess, cert: tuple[Path, Path]
) -> None:
    with httpx.Client(base_url=secure_server.base_url, verify=str(cert[0])) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        missing = client.get("/v2")
        assert missing.status_code == 401
        assert "missing or wrong credentials" in missing.json()["error"]
        assert client.get("/v2", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/v2", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/v2", headers={"X-API-Key": TOKEN}).status_code == 200
        body = {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
            ]
        }
        infer = client.post("/v2/models/identity/infer", json=body, headers={"X-API-Key": TOKEN})
        assert infer.status_code == 200 and infer.json()["outputs"][0]["data"] == [1, 2, 3, 4]


def test_rest_refuses_plain_http_on_a_tls_port(secure_server: ServerProcess) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{secure_server.http_port}/v2/health/live", timeout=5)


def test_grpc_over_tls_needs_the_token(
    secure_server: ServerProcess, cert: tuple[Path, Path]
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=cert[0].read_bytes())
    with grpc.secure_channel(secure_server.grpc_url, credentials) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        with pytest.raises(grpc.RpcError) as info:
            stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "missing or wrong credentials" in info.value.details()
        meta = stub.ServerMetadata(
            pb.ServerMetadataRequest(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10
        )
        assert meta.name == "amlpkg"


def test_tritonclient_grpc_with_tls_and_token(
    secure_server: ServerProcess, cert: tuple[Path, Path]
) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    with grpcclient.InferenceServerClient(
        secure_server.grpc_url, ssl=True, root_certificates=str(cert[0])
    ) as client:
        data = np.arange(8, dtype=np.float32).reshape(2, 4)
        tensor = grpcclient.InferInput("INPUT0", [2, 4], "FP32")
        tensor.set_data_from_numpy(data)
        result = client.infer("identity", [tensor], headers=headers)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
        with pytest.raises(grpcclient.InferenceServerException) as info:
            client.infer("identity", [tensor])
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"


def test_auth_off_needs_no_token(server: ServerProcess) -> None:
    assert httpx.get(server.base_url + "/v2").status_code == 200
