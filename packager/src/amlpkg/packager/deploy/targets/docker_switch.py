"""The stable endpoint of a docker deployment: a proxy container on the Docker host.

One per deployment, beside its revisions on a user-defined bridge network of its
own (``amlpkg-NAME``), started from the deployment's own scoring image (nothing else
needs pulling) with ``python -m amlpkg.runtime.proxy serve``, ``restart: always``,
a read-only root and no capabilities. It publishes the stable HTTP and gRPC ports
(fixed host ports, so they stay the same across restarts of the container and of
the host) and two preview ports that reach only the revision being verified. Its
routes live in a named volume, so a restarted proxy serves the same revisions.

The lifecycle tells it what to do with ``docker exec`` of ``python -m
amlpkg.runtime.proxy ctl`` (a unix socket in the volume): the control channel is
the Docker API itself, never a port.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from amlpkg.errors import FailedPreconditionError, UnavailableError

LABEL = "ai.amlpkg.deployment"
ROLE = "ai.amlpkg.role"
STATE = "/state"
PORTS = {"http_port": 8000, "grpc_port": 8001, "preview_http_port": 9000, "preview_grpc_port": 9001}
_ATTEMPTS = 4
_SECOND = 1_000_000_000  # the Docker API counts health check times in nanoseconds
_HEALTH = "import socket; socket.create_connection(('127.0.0.1', 8000), 2).close()"


def network_name(name: str) -> str:
    """The deployment's user-defined bridge network."""
    return f"amlpkg-{name}"


def proxy_name(name: str) -> str:
    """The deployment's proxy container."""
    return f"amlpkg-{name}-proxy"


def volume_name(name: str) -> str:
    """The named volume holding the proxy's routes and control socket."""
    return f"amlpkg-{name}-proxy-state"


def labels(name: str, role: str) -> dict[str, str]:
    """The labels of everything a deployment runs (``delete`` finds them by these)."""
    return {LABEL: name, ROLE: role}


def proxy_options(
    name: str, image: str, bind: str, http_port: int | None, grpc_port: int | None
) -> dict[str, Any]:
    """``containers.run`` keyword arguments of the proxy (None ports: the engine picks)."""
    ports = {
        f"{PORTS['http_port']}/tcp": (bind, http_port),
        f"{PORTS['grpc_port']}/tcp": (bind, grpc_port),
        f"{PORTS['preview_http_port']}/tcp": (bind, None),
        f"{PORTS['preview_grpc_port']}/tcp": (bind, None),
    }
    return {
        "image": image,
        "name": proxy_name(name),
        "command": ["python", "-m", "amlpkg.runtime.proxy", "serve", "--state", STATE],
        "detach": True,
        "labels": labels(name, "proxy"),
        "ports": ports,
        "network": network_name(name),
        "volumes": {volume_name(name): {"bind": STATE, "mode": "rw"}},
        "restart_policy": {"Name": "always"},
        # Root owns a fresh volume; root without capabilities can write it and no more.
        "user": "0:0",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "healthcheck": {
            "test": ["CMD", "python", "-c", _HEALTH],
            "interval": 10 * _SECOND,
            "timeout": 3 * _SECOND,
            "retries": 3,
            "start_period": 5 * _SECOND,
        },
    }


@dataclass
class Switch:
    """A deployment's proxy container, and its control operations."""

    container: Any

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """One control request through ``docker exec``; raises when the proxy refuses.

        Every operation is idempotent, so an exec whose output the engine lost (seen
        with short-lived execs on a busy host: exit 0, no output) is run again.
        """
        request = json.dumps({"op": op, **fields})
        argv = ["python", "-m", "amlpkg.runtime.proxy", "ctl", "--state", STATE, request]
        answer: dict[str, Any] | None = None
        text, code = "", None
        for attempt in range(_ATTEMPTS):
            code, output = self.container.exec_run(argv)
            text = output.decode(errors="replace").strip()
            with contextlib.suppress(IndexError, ValueError):
                answer = json.loads(text.splitlines()[-1])
            if answer is not None or text:  # an answer, or what went wrong (a traceback)
                break
            time.sleep(0.2 * (attempt + 1))
        if answer is None:
            answer = {"ok": False, "error": text[-300:] or f"no answer (exit {code})"}
        if not answer.get("ok"):
            raise UnavailableError(
                f"the proxy {self.container.name} refused {op}: {answer.get('error')}",
                hint=f"see `docker logs {self.container.name}` on the Docker host",
            )
        return answer

    def ports(self) -> dict[str, int]:
        """The host ports the proxy publishes now (the preview ones change on restarts)."""
        self.container.reload()
        published = self.container.attrs["NetworkSettings"]["Ports"] or {}
        found: dict[str, int] = {}
        for key, port in PORTS.items():
            bindings = published.get(f"{port}/tcp") or []
            if bindings:
                found[key] = int(bindings[0]["HostPort"])
        return found

    def wait(self, timeout_s: float = 30.0) -> None:
        """Until the proxy answers on its control socket; raises when its process exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.call("status")
                return
            except UnavailableError:
                self.container.reload()
                # With restart: always, an exiting proxy shows as restarting (or counts).
                if self.container.status in ("exited", "dead", "restarting") or (
                    self.container.attrs.get("RestartCount", 0) > 0
                ):
                    logs = self.container.logs(tail=3).decode(errors="replace").strip()
                    raise UnavailableError(
                        f"the proxy {self.container.name} exited: {logs.replace(chr(10), ' | ')}"
                    ) from None
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)


def find(client: Any, name: str, *, start: bool = True) -> Switch | None:
    """The deployment's proxy container (started if it was stopped and ``start``); None if
    there is none."""
    import docker

    try:
        container = client.containers.get(proxy_name(name))
    except docker.errors.NotFound:
        return None
    if start and container.status != "running":
        container.start()
    return Switch(container)


def ensure(
    client: Any, name: str, image: str, *, bind: str, http_port: int, grpc_port: int
) -> tuple[Switch, bool]:
    """The deployment's network and proxy, created when missing; ``(switch, created)``.

    Ports 0 mean any free port: the engine picks them, then the proxy is made again
    with those ports fixed, since the engine picks new ones at each restart otherwise.
    """
    _ensure_network(client, name)
    switch = find(client, name)
    if switch is not None:
        ports = switch.ports()
        for key, wanted in (("http_port", http_port), ("grpc_port", grpc_port)):
            if wanted and ports.get(key) != wanted:
                raise FailedPreconditionError(
                    f"{name}'s endpoint is on port {ports.get(key)}, not {wanted}",
                    hint=f"deploy without --port/--grpc-port, or `amlpkg deployments delete"
                    f" {name}` first to move it",
                )
        switch.wait()
        return switch, False
    import docker

    try:
        switch = _create(client, name, image, bind=bind, http_port=http_port, grpc_port=grpc_port)
        return switch, True
    except (UnavailableError, docker.errors.APIError) as exc:
        why = exc.message if isinstance(exc, UnavailableError) else str(exc)
        raise FailedPreconditionError(
            f"the proxy of {name} did not start from {image}: {why}",
            hint="the image must carry amlpkg.runtime.proxy: rebuild it with this amlpkg"
            " (`amlpkg build`)",
        ) from exc


def _create(
    client: Any, name: str, image: str, *, bind: str, http_port: int, grpc_port: int
) -> Switch:
    """Run the proxy (twice when the engine picks the ports, to fix them); on a failure
    nothing of it is left."""
    try:
        options = proxy_options(name, image, bind, http_port or None, grpc_port or None)
        switch = Switch(client.containers.run(**options))
        switch.wait()
        if not (http_port and grpc_port):
            picked = switch.ports()
            switch.container.remove(force=True)
            options = proxy_options(name, image, bind, picked["http_port"], picked["grpc_port"])
            switch = Switch(client.containers.run(**options))
            switch.wait()
        return switch
    except Exception:
        _discard_proxy(client, name)
        raise


def _discard_proxy(client: Any, name: str) -> None:
    """Remove the proxy container and its volume (the network too when nothing else uses it)."""
    import docker

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.containers.get(proxy_name(name)).remove(force=True)
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.volumes.get(volume_name(name)).remove(force=True)
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        network = client.networks.get(network_name(name))
        if not network.attrs.get("Containers"):
            network.remove()


def _ensure_network(client: Any, name: str) -> None:
    import docker

    try:
        client.networks.get(network_name(name))
    except docker.errors.NotFound:
        client.networks.create(network_name(name), driver="bridge", labels=labels(name, "network"))


def remove_all(client: Any, name: str) -> None:
    """Remove every container of the deployment, its network and the proxy's volume."""
    import docker

    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"}):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.networks.get(network_name(name)).remove()
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(volume_name(name)).remove(force=True)
