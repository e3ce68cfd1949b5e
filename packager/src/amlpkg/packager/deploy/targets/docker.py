"""``--target docker``: the scoring image as containers on the Docker host of ``DOCKER_HOST``.

``DOCKER_HOST`` (or ``--docker-host``) may be the local socket, ``tcp://`` with TLS
(``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) or ``ssh://user@host`` (the docker
SDK's paramiko transport). Everything that serves lives on the Docker host, so a
deployment outlives the machine that ran ``amlpkg deploy`` and a reboot of the host:
each revision is its own container (restart policy, CPU/memory limits, a health
check on ``/v2/health/ready``, a read-only root, no published ports) on the
deployment's network, and the stable endpoint is the deployment's proxy container
(:mod:`.docker_switch`). Blue/green: the new revision is verified through the
proxy's preview ports (readiness, smoke inference over HTTP and gRPC), then the
proxy's routes move to it, and the old container is stopped once it answered what
it got. The routes take weights too: the same switch can split traffic by share.
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
from amlpkg.packager.deploy.targets import docker_models as dm
from amlpkg.packager.deploy.targets import docker_switch as sw
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Prepared, Revision
from amlpkg.packager.deploy.targets.local import front_ports, state_dir
from amlpkg.store.workspace import Workspace

LABEL, ROLE = sw.LABEL, sw.ROLE
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
    request: DeployRequest[DockerOptions], image: str, deployment_id: str = ""
) -> dict[str, Any]:
    """``containers.run`` keyword arguments for one revision (reached by name on the
    deployment's network, so it publishes no port)."""
    opts = request.options
    revision = deployment_id.rpartition(":")[2] or "0"
    options: dict[str, Any] = {
        "image": image,
        "detach": True,
        "name": f"amlpkg-{request.name}-{revision}-{os.urandom(3).hex()}",
        "labels": {**sw.labels(request.name, "revision"), "ai.amlpkg.revision": deployment_id},
        "network": sw.network_name(request.name),
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
        "environment": telemetry_env(
            opts.telemetry_endpoint, deployment_id, token_file=opts.telemetry_token_file
        ),
    }
    if opts.cpus is not None:
        options["nano_cpus"] = int(opts.cpus * _SECOND)
    if opts.memory is not None:
        # Kubernetes-style quantities (512Mi, 1Gi) mean the same as Docker's 512m, 1g.
        options["mem_limit"] = opts.memory.removesuffix("i").lower()
    if request.source.model is not None:
        options["labels"]["ai.amlpkg.model"] = request.source.model.ref
    elif request.source.oci is not None:
        options["labels"]["ai.amlpkg.model"] = request.source.oci.reference
    return options


def _docker_host(opts: DockerOptions) -> str | None:
    return opts.docker_host or os.environ.get("DOCKER_HOST")


class DockerTarget(Lifecycle):
    """Runs containers and their proxy on a Docker host; see the module docstring."""

    name: ClassVar[str] = "docker"
    options_model: ClassVar[type[DeployOptions]] = DockerOptions

    def plan(self, ws: Workspace, request: DeployRequest[DockerOptions]) -> Plan:
        """The container settings a deploy would use."""
        host = _docker_host(request.options)
        options = run_options(request, image_for(ws, request.source))
        return Plan(
            target=self.name,
            steps=[
                f"on {host or 'the local Docker engine'}: network {options['network']} and the"
                f" proxy container {sw.proxy_name(request.name)} (restart=always) holding the"
                " stable endpoint, created when missing",
                f"run {options['image']} on that network with"
                f" restart={options['restart_policy']['Name']}, health check, read-only root",
                "wait for /v2/health/ready, smoke inference over HTTP and gRPC (proxy preview)",
                "switch the proxy's routes, stop the previous container once drained",
            ],
        )

    def prepare(self, ws: Workspace, request: DeployRequest[DockerOptions]) -> Prepared:
        """The model (for the smoke test), the image and a Docker engine that answers."""
        source = request.source
        if source.model is None and source.oci is None:
            raise FailedPreconditionError(
                "a docker deploy needs the model version (for the smoke test)",
                hint="deploy NAME:VERSION (or oci://REGISTRY/REPO@sha256:...) with --image IMAGE",
            )
        image = image_for(ws, source)
        docker_host = _docker_host(request.options)
        client = _client(docker_host)
        return Prepared(
            model=None if source.model is None else source.model.ref,
            package=package_for(ws, source),
            image=image,
            config={"docker_host": docker_host},
            live={"client": client, "docker_host": docker_host},
        )

    def start(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Run the revision's container on the deployment's network (with the proxy, made
        when missing); verify it through the proxy's preview ports."""
        request, client = rev.request, rev.live["client"]
        image = str(rev.record.image)
        address = docker_host_address(rev.live["docker_host"])
        name, signature = dm.served(request.source)
        rev.image_digest = _digest(client, image)
        # A revision from before the proxy lived on the host had its endpoint on the
        # client (a supervisor that may still hold those ports): start afresh then.
        on_host = rev.previous if rev.previous and rev.previous.state.get("proxy") else None
        front = front_ports(request.options, on_host)
        bind = _bind(request.options, on_host, address)
        switch, created = sw.ensure(
            client,
            request.name,
            image,
            bind=bind,
            http_port=front["http_port"],
            grpc_port=front["grpc_port"],
        )
        rev.live.update(switch=switch, created_proxy=created, bind=bind, address=address)
        options = run_options(request, image, rev.id)
        pack = dm.modelpack(request.source)
        if pack is None:
            container = client.containers.run(**options)
        else:
            # The fetched model goes into a volume through the engine (works on ssh:// too).
            container, volume = dm.create_with_models(client, options, pack, rev.id)
            rev.live.update(models_volume=volume, container=container)  # abort removes both
            rev.state["models_volume"] = volume
            container.start()
        rev.live["container"] = container
        backend = {"key": rev.id, "host": container.name, "http_port": 8000, "grpc_port": 8001}
        switch.call("preview", backend=backend)
        ports = switch.ports()
        preview_http = f"http://{address}:{ports['preview_http_port']}"
        try:
            wait_ready(
                preview_http,
                timeout_s=request.options.ready_timeout_s,
                alive=lambda: _exited(container),
            )
            smoke_http(preview_http, name, signature)
            smoke_grpc(f"{address}:{ports['preview_grpc_port']}", name, signature)
        except AmlpkgError as exc:
            logs = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            raise SmokeTestError(f"{exc.message} (container log: {logs})") from exc
        rev.state.update(
            container_id=container.id,
            container_name=container.name,
            docker_host=rev.live["docker_host"],
            proxy=switch.container.name,
            network=sw.network_name(request.name),
            backend={k: v for k, v in backend.items() if k != "key"},
        )

    def switch(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Route the stable endpoint to the revision, score through it once."""
        switch: sw.Switch = rev.live["switch"]
        name, signature = dm.served(rev.request.source)
        routes = [_route(rev.id, rev.state, 100.0)]
        percent, stable = rev.request.options.canary_percent, rev.previous
        if percent is not None and stable is not None and stable.state.get("backend"):
            # A canary: the serving revision keeps the rest until canary.py decides.
            routes = [
                _route(stable.id, stable.state, 100.0 - percent),
                _route(rev.id, rev.state, percent),
            ]
            rev.state["canary"] = {"stable": stable.id, "percent": percent, "decision": None}
        switch.call("route", routes=routes)
        rev.switched = True
        with contextlib.suppress(AmlpkgError):
            switch.call("preview", backend=None)
        ports = switch.ports()
        host = _endpoint_host(rev.live["bind"], rev.live["address"])
        rev.endpoint_http = f"http://{host}:{ports['http_port']}"
        rev.endpoint_grpc = f"{host}:{ports['grpc_port']}"
        rev.state["front"] = {
            "host": rev.live["bind"],
            "http_port": ports["http_port"],
            "grpc_port": ports["grpc_port"],
        }
        smoke_http(rev.endpoint_http, name, signature)

    def retire(self, ws: Workspace, rev: Revision[DockerOptions], old: DeploymentRecord) -> None:
        """Stop and remove the replaced container once the proxy says it is drained."""
        grace = rev.request.options.drain_grace_s
        rev.live["switch"].call("drain", key=old.id, grace_s=grace)
        _stop_container(rev.live["client"], old.state.get("container_id"), grace)
        dm.remove_volume(rev.live["client"], old.state.get("models_volume"))

    def abort(self, ws: Workspace, rev: Revision[DockerOptions]) -> None:
        """Route back if traffic moved, remove the new container (and a proxy made for it)."""
        switch: sw.Switch | None = rev.live.get("switch")
        if switch is not None:
            previous = rev.previous
            if rev.switched and previous is not None and previous.state.get("backend"):
                with contextlib.suppress(AmlpkgError):
                    switch.call("route", routes=[_route(previous.id, previous.state, 100.0)])
            with contextlib.suppress(AmlpkgError):
                switch.call("preview", backend=None)
        container = rev.live.get("container")
        if container is not None:
            _remove(container)
        dm.remove_volume(rev.live["client"], rev.live.get("models_volume"))
        if rev.live.get("created_proxy") and rev.previous is None:
            sw.remove_all(rev.live["client"], rev.request.name)

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
        """Read from the Docker host: the container's state and health, the proxy's state,
        routes and published endpoint, and whether that endpoint answers ready."""
        import docker

        live: dict[str, Any] = {
            "container": None,
            "health": None,
            "proxy": None,
            "serving": [],
            "endpoint_http": None,
            "ready": False,
        }
        client = _client(record.state.get("docker_host") or record.config.get("docker_host"))
        try:
            container_id = record.state.get("container_id")
            if container_id:
                try:
                    attrs = client.containers.get(container_id).attrs["State"]
                    live["container"] = attrs.get("Status")
                    live["health"] = (attrs.get("Health") or {}).get("Status")
                except docker.errors.NotFound:
                    live["container"] = "missing"
            switch = sw.find(client, record.name, start=False)
            if switch is not None:
                live["proxy"] = switch.container.status
                if switch.container.status == "running":
                    routes = switch.call("status")["routes"]
                    live["serving"] = [{"id": r["key"], "weight": r["weight"]} for r in routes]
                host = urlparse(record.endpoint_http or "").hostname or "127.0.0.1"
                port = switch.ports().get("http_port")
                live["endpoint_http"] = f"http://{host}:{port}" if port else None
        finally:
            client.close()
        live["ready"] = is_ready(live["endpoint_http"])
        return live

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Remove the proxy, every container of the deployment, its network and volume."""
        # Deployments made before the endpoint moved to the host had a client supervisor.
        sv.shutdown(state_dir(ws, record.name))
        client = _client(record.config.get("docker_host"))
        try:
            sw.remove_all(client, record.name)
            dm.remove_all(client, record.name)
        finally:
            client.close()
        serving = records.serving(ws, record.name)
        if serving is not None:
            return records.update(ws, serving.id, status="stopped", reason="deleted")
        return record


def settle_canary(canary: DeploymentRecord, stable: DeploymentRecord, *, promote: bool) -> None:
    """All traffic to the canary (``promote``) or back to the stable revision; the other
    one is stopped once drained. The records are :mod:`amlpkg.packager.deploy.canary`'s."""
    keep, drop = (canary, stable) if promote else (stable, canary)
    client = _client(canary.state.get("docker_host") or canary.config.get("docker_host"))
    try:
        switch = sw.find(client, canary.name)
        if switch is None:
            raise FailedPreconditionError(
                f"{canary.name} has no proxy container on its Docker host",
                hint=f"deploy {canary.name} again, or `amlpkg deployments delete {canary.name}`",
            )
        switch.call("route", routes=[_route(keep.id, keep.state, 100.0)])
        grace = float(canary.config.get("drain_grace_s", 10.0))
        switch.call("drain", key=drop.id, grace_s=grace)
        _stop_container(client, drop.state.get("container_id"), grace)
        dm.remove_volume(client, drop.state.get("models_volume"))
    finally:
        client.close()


def _route(key: str, state: dict[str, Any], weight: float) -> dict[str, Any]:
    """A proxy route to the revision whose record state is ``state``."""
    return {"key": key, **state["backend"], "weight": weight}


def _bind(opts: DockerOptions, previous: DeploymentRecord | None, address: str) -> str:
    """Where the proxy publishes: as asked, else as before, else loopback for a local engine
    and every interface of a remote host (the endpoint must be reachable from here)."""
    front = (previous.state.get("front") if previous else None) or {}
    default = "127.0.0.1" if address == "127.0.0.1" else "0.0.0.0"
    return str(opts.host or front.get("host") or default)


def _endpoint_host(bind: str, address: str) -> str:
    """The host in endpoint URLs: the bound address, or the Docker host's for wildcards."""
    return address if bind in ("0.0.0.0", "::", "", "127.0.0.1") else bind


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
