"""The Docker engine boundary: a client, and docker-SDK errors turned into ours."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from amlpkg.packager.build.errors import DockerUnavailableError

if TYPE_CHECKING:
    import docker


def _forget(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc``'s chain and collect what they held, quietly.

    docker-py's client leaves the socket of a failed version probe open, referenced
    only from the traceback; collecting it here closes it without a ResourceWarning
    surfacing later at some unrelated place.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        linked = [current.__cause__, current.__context__, *current.args]
        pending += [e for e in linked if isinstance(e, BaseException)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def docker_client(timeout: int = 600, host: str | None = None) -> docker.DockerClient:
    """A client of the engine at ``host`` (default: ``DOCKER_HOST``, else the local socket)
    that answers a ping; ``ssh://user@host[:port]`` goes through paramiko."""
    try:
        import docker
    except ImportError as exc:  # the deploy extra is not installed
        raise DockerUnavailableError(
            "the docker Python SDK is not installed",
            hint="pip install 'amlpkg[deploy]'",
        ) from exc
    environment = dict(os.environ)
    if host is not None:
        environment["DOCKER_HOST"] = host
    host = environment.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host[len("unix://") :]).exists():
        raise DockerUnavailableError(
            f"no Docker engine: the socket {host} does not exist",
            hint="start dockerd (or set DOCKER_HOST), or use `amlpkg package` for hosts"
            " without Docker",
        )
    failure: Exception | None = None
    client: docker.DockerClient | None = None
    try:
        client = docker.from_env(timeout=timeout, environment=environment)
        client.ping()
    except docker.errors.DockerException as exc:
        failure = exc
    except Exception as exc:  # ssh://: paramiko's errors come through unwrapped
        if not host.startswith("ssh://"):
            raise
        failure = exc
    if failure is None and client is not None:
        return client
    if client is not None:
        client.close()
    assert failure is not None
    message = str(failure)
    _forget(failure)
    where = "" if host.startswith("unix://") else f" at {host}"
    raise DockerUnavailableError(
        f"no Docker engine answers{where}: {message}",
        hint="start dockerd (or set DOCKER_HOST), or use `amlpkg package` for hosts without Docker",
    ) from failure


def docker_answers() -> bool:
    """Whether a Docker engine answers now (never raises)."""
    try:
        docker_client(timeout=5).close()
    except DockerUnavailableError:
        return False
    return True
