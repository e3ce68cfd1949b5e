"""``--target docker``: real images from ``amlpkg build`` on the real Docker engine.

The images are built once per module with the build stage's own code on its
locally made base image (no public registry is reachable here). The ``ssh://``
test runs a real OpenSSH server on a free localhost port with keys made in the
test; the docker SDK (paramiko) runs ``docker system dial-stdio`` through it on
this same machine. The ``tcp://`` test puts mutual TLS (certificates made in the
test) in front of the engine's socket, since this machine runs one dockerd only.
Every container, the proxy container and the network are removed by finalizers.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amlpkg.errors import AmlpkgError
from amlpkg.packager import deploy as api
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.smoke import SmokeTestError
from amlpkg.packager.deploy.targets.docker import LABEL, ROLE
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.lineage_view import lineage
from amlpkg.trainer.registry import register
from tests.packager.test_deploy_local import _score_http, _while_scoring
from tests.runtime import toy_models
from tests.services import docker_available, require, sshd_server

MODEL = "scorer"
TAG = "amlpkg-deploy-test/scorer"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[int, str]]]:
    """A workspace home with scorer v1, v2 (other weights), v3 (fails at run time), each
    built into ``amlpkg-deploy-test/scorer:<version>``."""
    require(docker_available(), "a Docker engine is needed")
    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base
    from amlpkg.packager.build.options import BuildOptions

    ensure_local_base()
    home = tmp_path_factory.mktemp("docker") / "home"
    files = home.parent / "files"
    packages: dict[int, str] = {}
    with open_workspace(home) as ws:
        for version, model in enumerate(
            (
                toy_models.mlp_model((4, 8, 3), seed=0),
                toy_models.mlp_model((4, 8, 3), seed=1),
                toy_models.fails_on_large_model(threshold=-1.0),
            ),
            start=1,
        ):
            register(MODEL, toy_models.save(model, files, MODEL, version), workspace=ws)
            package = build_image(
                ws,
                f"{MODEL}:{version}",
                BuildOptions(tag=f"{TAG}:{version}", base_image=LOCAL_BASE_TAG),
            )
            packages[version] = package.id
    yield home, packages


@pytest.fixture
def ws(built: tuple[Path, dict[int, str]]) -> Iterator[Workspace]:
    with open_workspace(built[0]) as workspace:
        yield workspace
        for record in records.latest_per_name(workspace):
            if record.status == "stopped":
                continue
            with contextlib.suppress(AmlpkgError):
                api.delete(record.name, workspace=workspace)


def _deploy(ws: Workspace, version: int, name: str, **options: Any) -> records.DeploymentRecord:
    opts = {"image": f"{TAG}:{version}", "cpus": 1, "memory": "512Mi", **options}
    return api.deploy(f"{MODEL}:{version}", target="docker", name=name, options=opts, workspace=ws)


def _containers(name: str, role: str | None = "revision") -> list[Any]:
    """The deployment's revision containers (``role`` None: everything, the proxy too)."""
    import docker

    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
        return [c for c in found if role is None or c.labels.get(ROLE) == role]
    finally:
        client.close()


def _gone(name: str) -> bool:
    """Nothing of deployment ``name`` is left on the engine: containers, network, volume."""
    import docker

    client = docker.from_env()
    try:
        networks = client.networks.list(names=[f"amlpkg-{name}"])
        volumes = client.volumes.list(filters={"name": f"amlpkg-{name}-proxy-state"})
        return _containers(name, role=None) == [] and networks == [] and volumes == []
    finally:
        client.close()


def test_docker_blue_green_broken_model_and_rollback(ws: Workspace) -> None:
    first = _deploy(ws, 1, "dock")
    assert first.status == "ready" and first.image_digest
    (container,) = _containers("dock")
    host_config = container.attrs["HostConfig"]
    assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
    assert host_config["NanoCpus"] == 1_000_000_000
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert host_config["ReadonlyRootfs"] is True
    assert container.attrs["Config"]["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    # Reached by name on the deployment's network: it publishes nothing.
    assert host_config["PortBindings"] in ({}, None)
    assert list(container.attrs["NetworkSettings"]["Networks"]) == ["amlpkg-dock"]
    (proxy,) = _containers("dock", role="proxy")
    assert proxy.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert list(proxy.attrs["NetworkSettings"]["Networks"]) == ["amlpkg-dock"]
    assert first.endpoint_http == (f"http://127.0.0.1:{proxy.ports['8000/tcp'][0]['HostPort']}")

    scorers = _while_scoring(first, lambda: _deploy(ws, 2, "dock"))
    for scorer in scorers:
        assert scorer.failures == [], scorer.failures[:3]
        assert scorer.versions[0] == 1 and scorer.versions[-1] == 2
    assert [c.labels["ai.amlpkg.model"] for c in _containers("dock")] == [f"{MODEL}:2"]
    assert records.get(ws, "dock:1").status == "stopped"

    with pytest.raises(SmokeTestError):
        _deploy(ws, 3, "dock", ready_timeout_s=60.0)
    assert records.get(ws, "dock:3").status == "failed"
    assert first.endpoint_http is not None
    assert _score_http(first.endpoint_http) == 2  # the old one keeps serving
    assert len(_containers("dock")) == 1  # the failed container is gone

    scorers = _while_scoring(first, lambda: api.rollback("dock", workspace=ws))
    for scorer in scorers:
        assert scorer.failures == [], scorer.failures[:3]
        assert scorer.versions[-1] == 1
    assert records.serving(ws, "dock") == records.get(ws, "dock:4")
    assert api.status("dock", workspace=ws)["live"]["container"] == "running"

    api.delete("dock", workspace=ws)
    assert _gone("dock")


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A real sshd on a free port; ~/.ssh (a temp HOME) trusts its host key."""
    with sshd_server(tmp_path) as (port, home):
        monkeypatch.setenv("HOME", str(home))
        yield port


def test_docker_over_ssh_from_a_package_id(
    ws: Workspace, sshd: int, built: tuple[Path, dict[int, str]]
) -> None:
    docker_host = f"ssh://{getpass.getuser()}@127.0.0.1:{sshd}"
    package_id = built[1][1]
    record = api.deploy(
        package_id,
        target="docker",
        name="dock-ssh",
        options={"docker_host": docker_host},
        workspace=ws,
    )
    assert record.status == "ready" and record.config["docker_host"] == docker_host
    assert record.package == package_id and record.model == f"{MODEL}:1"
    assert record.image_digest and record.image
    assert record.endpoint_http is not None
    assert _score_http(record.endpoint_http) == 1
    edges = {
        (e["src_kind"], e["src_id"], e["dst_id"])
        for e in lineage(f"{MODEL}:1", workspace=ws)["downstream"]
    }
    assert ("package", package_id, "dock-ssh:1") in edges
    live = api.status("dock-ssh", workspace=ws)["live"]
    assert live["container"] == "running" and live["ready"] is True
    assert live["serving"] == [{"id": "dock-ssh:1", "weight": 100.0}]
    api.delete("dock-ssh", workspace=ws)
    assert _gone("dock-ssh")


def _certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as Docker's
    ``DOCKER_CERT_PATH`` layout (ca.pem, cert.pem, key.pem) plus server-*.pem."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def make(
        name: str, issuer: tuple[Any, Any] | None, usage: Any, san: Any = None, ca: bool = False
    ) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer[0].subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
        return cert, key

    def write(cert: Any, key: Any, cert_name: str, key_name: str) -> None:
        (folder / cert_name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / key_name).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca = make("amlpkg test CA", None, None, ca=True)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = make("127.0.0.1", ca, ExtendedKeyUsageOID.SERVER_AUTH, san)
    client = make("amlpkg", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    write(*ca, "ca.pem", "ca-key.pem")
    write(*server, "server-cert.pem", "server-key.pem")
    write(*client, "cert.pem", "key.pem")


class _TlsDockerEndpoint:
    """``tcp://127.0.0.1:PORT`` with mutual TLS in front of the local engine's socket, as
    ``dockerd --tlsverify`` would serve it (this machine runs one dockerd only)."""

    def __init__(self, certs: Path, socket_path: str = "/var/run/docker.sock") -> None:
        import asyncio
        import ssl
        import threading

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "ca.pem")
        context.load_cert_chain(certs / "server-cert.pem", certs / "server-key.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        self._ready = threading.Event()

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main() -> None:
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await self._stop.wait()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_docker_over_tcp_with_tls(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _certificates(tmp_path)
    endpoint = _TlsDockerEndpoint(tmp_path)
    try:
        monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
        monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
        docker_host = f"tcp://127.0.0.1:{endpoint.port}"
        record = _deploy(ws, 1, "dock-tls", docker_host=docker_host)
        assert record.status == "ready" and record.config["docker_host"] == docker_host
        assert record.endpoint_http is not None
        assert _score_http(record.endpoint_http) == 1
        # Without the client certificate the engine is not reachable: TLS is really on.
        monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "nowhere"))
        with pytest.raises(AmlpkgError, match="no Docker engine answers"):
            _deploy(ws, 2, "dock-tls", docker_host=docker_host)
        monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
        api.delete("dock-tls", workspace=ws)
        assert _gone("dock-tls")
    finally:
        endpoint.close()


def test_a_foreign_exception_fails_the_revision_and_old_keeps_serving(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RuntimeError after traffic moved: switched back, new container gone, old serves."""
    from amlpkg.errors import UnavailableError
    from amlpkg.packager.deploy.targets.docker import DockerTarget

    first = _deploy(ws, 1, "dock-err")
    assert first.endpoint_http is not None
    switch = DockerTarget.switch

    def breaks(self: Any, workspace: Workspace, rev: Any) -> None:
        switch(self, workspace, rev)
        raise RuntimeError("lost the Docker engine")

    monkeypatch.setattr(DockerTarget, "switch", breaks)
    with pytest.raises(UnavailableError, match="lost the Docker engine") as caught:
        _deploy(ws, 2, "dock-err")
    assert "dock-err:1 keeps serving" in (caught.value.hint or "")
    failed = records.get(ws, "dock-err:2")
    assert failed.status == "failed" and "lost the Docker engine" in (failed.reason or "")
    assert records.serving(ws, "dock-err") == records.get(ws, "dock-err:1")
    assert [c.id for c in _containers("dock-err")] == [first.state["container_id"]]
    assert _score_http(first.endpoint_http) == 1
