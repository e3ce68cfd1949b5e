"""``--target docker``: the scoring image as a container on the Docker host of ``DOCKER_HOST``.

``DOCKER_HOST`` (or ``--docker-host``) may be the local socket, ``tcp://`` with TLS
(``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) or ``ssh://user@host`` (the docker
SDK's paramiko transport). Each revision is its own container with a restart
policy, CPU/memory limits, a health check on ``/v2/health/ready`` and a read-only
root, publishing random host ports. Blue/green works as on ``local``: the stable
endpoint is the supervisor's switching proxy on the machine running amlpkg,
attached to the new container once it passed readiness and the smoke inference;
the old container is stopped (SIGTERM, drain) once it answered what it got.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar
from urllib.parse import urlparse

from amlpkg.errors import AmlpkgError, FailedPreconditionError, UnavailableError
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy import supervisor_client as sv
from amlpkg.packager.deploy.lifecycle import Lifecycle
from amlpkg.packager.deploy.options import DeployOptions, DockerOptions
from amlpkg.packager.deploy.otel import telemetry_env
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.smoke import (
    SmokeTestError,
    is_ready,
    smoke_grpc,
    smoke_http,
    wait_ready,
)
from amlpkg.packager.deploy.sources import image_for, package_for
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Prepared, Revision
from amlpkg.packager.deploy.targets.local import endpoints_of, front_ports, state_dir
from amlpkg.store.workspace import Workspace

LABEL = "ai.amlpkg.deployment"
_HEALTH = (
    "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
    "'http://127.0.0.1:8000/v2/health/ready', timeout=2).status == 200 else 1)"
)
_SECOND = 1_000_000_000  # the Docker API counts health check times in nanoseconds


def docker_host_address(docker_host: str | None) -> str:
    """The address where a container's published ports are reached from here."""
    if not docker_host or docker_host.startswith(("unix://", "npipe://")):
        return "127.0.0.1"
    host = urlparse(docker_host).hostname
    return host or "127.0.0.1"


def _client(docker_host: str | None) -> Any:
    import docker
    from docker.utils import kwargs_from_env

    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    try:
        kwargs = kwargs_from_env(environment=env)
        if kwargs.get("tls"):
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the CA of the TLS
            # config (psf/requests#3829), so the engine's CA would be ignored wherever
            # those are set: turn the environment off, then negotiate the API version.
            client = docker.DockerClient(version="1.24", timeout=120, **kwargs)
            api: Any = client.api  # private members: not in the type stubs
            api.trust_env = False
            api._version = api._retrieve_server_version()
        else:
            client = docker.from_env(environment=env, timeout=120)
        client.ping()
    except Exception as exc:  # DockerException, and paramiko/socket errors for ssh://
        raise UnavailableError(
            f"no Docker engine answers at {env.get('DOCKER_HOST', 'the local socket')}: {exc}",
            hint="check DOCKER_HOST (unix://, tcp:// with DOCKER_TLS_VERIFY, ssh://user@host)",
        ) from exc
    return client


def run_options(
    request: DeployRequest[DockerOptions], image: str, bind: str, deployment_id: str = ""
) -> dict[str, Any]:
    """``containers.run`` keyword arguments for one revision."""
    opts = request.options
    options: dict[str, Any] = {
        "image": image,
        "detach": True,
        "name": f"amlpkg-{request.name}-{os.urandom(3).hex()}",
        "labels": {LABEL: request.name},
        "ports": {"8000/tcp": (bind, None), "8001/tcp": (bind, None)},
        "restart_policy": {"Name": opts.restart},
        "healthcheck": {
            "test": ["CMD", "python", "-c", _HEALTH],
            "interval": 5 * _SECOND,
            "timeout": 3 * _SECOND,
            "retries": 3,
            "start_period": 30 * _SECOND,
        },
        "read_only": True,
        "tmpfs": {"/tmp": "rw,size=64m"},
        "environment": telemetry_env(opts.telemetry_endpoint, deployment_id),
    }
    if opts.cpus is not None:
        options["nano_cpus"] = int(opts.cpus * _SECOND)
    if opts.memory is not None:
        # Kubernetes-style quantities (512Mi, 1Gi) mean the same as Docker's 512m, 1g.
        options["mem_limit"] = opts.memory.removesuffix("i").lower()
    if request.source.model is not None:
        options["labels"]["ai.amlpkg.model"] = request.source.model.ref
    return options


def _docker_host(opts: DockerOptions) -> str | None:
    return opts.docker_host or os.environ.get("DOCKER_HOST")


class DockerTarget(Lifecycle):
    """Runs containers on a Docker host; see the module docstring."""

    name: ClassVar[str] = "docker"
    options_model: ClassVar[type[DeployOptions]] = DockerOptions

    def plan(self, ws: Workspace, request: DeployRequest[DockerOptions]) -> Plan:
        """The container settings a deploy would use."""
        host = _docker_host(request.options)
        options = run_options(request, image_for(ws, request.source), "127.0.0.1")
        return Plan(
            target=self.name,
            steps=[
                f"run {options['image']} on {host or 'the local Docker engine'} with"
                f" restart={options['restart_policy']['Name']}, health check, read-only root",
                "wait for /v2/health/ready, smoke inference over HTTP and gRPC",
                "switch the stable endpoint, stop the previous container once drained",
            ],
        )

    def prepare(self, ws: Workspace, request: DeployRequest[DockerOptions]) -> Prepared:
        """The model (for the smoke test), the image and a Docker engine that answers."""
        source = request.source
        if source.model is None:
            raise FailedPreconditionError(
                "a docker deploy needs the model version (for the smoke test)",
                hint="deploy NAME:VERSION with --image IMAGE",
            )
        image = image_for(ws, source)
        docker_host = _docker_host(request.options)
        client = _client(docker_host)
        return Prepared(
            model=source.model.ref,
            package=package_for(ws, source),
            image=image,
            config={"docker_host": docker_host},
            live={"client": client, "docker_host": docker_host},
        )

    def start(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Run the revision's container on random host ports; verify it directly."""
        request, client = rev.request, rev.live["client"]
        image = str(rev.record.image)
        address = docker_host_address(rev.live["docker_host"])
        model = request.source.model
        assert model is not None  # prepare checked
        rev.image_digest = _digest(client, image)
        bind = "127.0.0.1" if address == "127.0.0.1" else "0.0.0.0"
        container = client.containers.run(**run_options(request, image, bind, rev.id))
        rev.live["container"] = container
        container.reload()
        ports = {
            "http_port": int(container.ports["8000/tcp"][0]["HostPort"]),
            "grpc_port": int(container.ports["8001/tcp"][0]["HostPort"]),
        }
        backend_http = f"http://{address}:{ports['http_port']}"
        try:
            wait_ready(
                backend_http,
                timeout_s=request.options.ready_timeout_s,
                alive=lambda: _exited(container),
            )
            smoke_http(backend_http, model.name, model.signature)
            smoke_grpc(f"{address}:{ports['grpc_port']}", model.name, model.signature)
        except AmlpkgError as exc:
            logs = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            raise SmokeTestError(f"{exc.message} (container log: {logs})") from exc
        rev.live["ports"] = ports
        rev.state.update(
            container_id=container.id,
            container_name=container.name,
            docker_host=rev.live["docker_host"],
            backend={"host": address, **ports},
        )

    def switch(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Attach the container to the stable endpoint, switch, score through it once."""
        folder, ports = state_dir(ws, rev.request.name), rev.live["ports"]
        model = rev.request.source.model
        assert model is not None
        info = sv.ensure_supervisor(folder, **front_ports(rev.request.options, rev.previous))
        sv.call(folder, "attach", key=rev.id, host=rev.state["backend"]["host"], **ports)
        sv.call(folder, "switch", key=rev.id)
        rev.switched = True
        rev.endpoint_http, rev.endpoint_grpc = endpoints_of(info)
        rev.state["front"] = {"host": info["host"], **{k: info[k] for k in ports}}
        smoke_http(rev.endpoint_http, model.name, model.signature)

    def retire(self, ws: Workspace, rev: Revision[DockerOptions], old: DeploymentRecord) -> None:
        """Detach the replaced container once drained, then stop and remove it."""
        grace = rev.request.options.drain_grace_s
        folder = state_dir(ws, rev.request.name)
        sv.call(folder, "stop", key=old.id, grace_s=grace, timeout_s=grace + 60.0)
        _stop_container(rev.live["client"], old.state.get("container_id"), grace)

    def abort(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Switch back if traffic moved, detach and remove the new container."""
        folder = state_dir(ws, rev.request.name)
        if rev.switched and rev.previous is not None:
            with contextlib.suppress(AmlpkgError):
                sv.call(folder, "switch", key=rev.previous.id)
        if rev.switched or "ports" in rev.live:
            with contextlib.suppress(AmlpkgError):
                sv.call(folder, "stop", key=rev.id, grace_s=0.0)
        container = rev.live.get("container")
        if container is not None:
            _remove(container)

    def release(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Close the Docker client."""
        with contextlib.suppress(Exception):
            rev.live["client"].close()

    def wrap(self, exc: Exception) -> AmlpkgError:
        """Docker SDK, HTTP and OS errors: the engine refused or broke off."""
        return UnavailableError(
            f"the docker deploy failed: {type(exc).__name__}: {exc}",
            hint="check the Docker engine (docker info) and the container's log",
        )

    def status(self, ws: Workspace, record: DeploymentRecord) -> dict[str, Any]:
        """The container's state and health, and whether the stable endpoint answers."""
        live: dict[str, Any] = {"container": None, "health": None, "ready": False}
        container_id = record.state.get("container_id")
        if container_id:
            import docker

            client = _client(record.state.get("docker_host"))
            try:
                attrs = client.containers.get(container_id).attrs["State"]
                live["container"] = attrs.get("Status")
                live["health"] = (attrs.get("Health") or {}).get("Status")
            except docker.errors.NotFound:
                live["container"] = "missing"
            finally:
                client.close()
        live["ready"] = is_ready(record.endpoint_http)
        return live

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Stop the proxy and every container of the deployment."""
        sv.shutdown(state_dir(ws, record.name))
        client = _client(record.config.get("docker_host"))
        try:
            for container in client.containers.list(all=True, filters={"label": LABEL}):
                if container.labels.get(LABEL) == record.name:
                    _remove(container)
        finally:
            client.close()
        serving = records.serving(ws, record.name)
        if serving is not None:
            return records.update(ws, serving.id, status="stopped", reason="deleted")
        return record


def _digest(client: Any, image: str) -> str:
    import docker

    try:
        attrs = client.images.get(image).attrs
    except docker.errors.ImageNotFound as exc:
        raise FailedPreconditionError(
            f"image {image} is not on the Docker host",
            hint="build it with `amlpkg build`, or push it where the host can pull it",
        ) from exc
    digests = attrs.get("RepoDigests") or []
    return str(digests[0] if digests else attrs["Id"])


def _exited(container: Any) -> str | None:
    container.reload()
    # With a restart policy a crashing container shows as restarting, not exited.
    if container.status in ("exited", "dead", "restarting"):
        return f"container {container.name} {container.status}"
    return None


def _stop_container(client: Any, container_id: str | None, grace: float) -> None:
    import docker

    if not container_id:
        return
    try:
        container = client.containers.get(container_id)
        container.stop(timeout=int(grace) + 5)
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


def _remove(container: Any) -> None:
    import docker

    with contextlib.suppress(docker.errors.APIError):
        container.remove(force=True)
