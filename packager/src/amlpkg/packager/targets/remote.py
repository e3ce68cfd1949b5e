"""``amlpkg run --target ssh://USER@HOST[:PORT]``: the command runs on a remote Docker engine.

The engine is reached through ssh (the docker SDK over paramiko: ``~/.ssh/config``,
``known_hosts`` and keys as for ``DOCKER_HOST=ssh://``), and nothing is shared with
this machine but that connection:

- the image is built there: the run's environment image (its Python and requirements,
  as for ``--target docker``) is built by the remote engine from a context sent through
  the API, with the wheels gathered here, so the remote host needs no network;
- the code is copied into the container (the working directory as its code snapshot
  is taken, under :data:`CODE_DIR`) before it starts;
- the run is recorded on a team server, whose URL and token the container gets: an
  embedded workspace is a folder on this machine, which a remote container cannot
  open, so such a run is refused before it starts, with how to start a server. (Sending
  the records back over the output stream would need a second, private protocol and
  would lose them when the connection drops; the team server is already the way runs
  from many machines are kept.)

The runner's child is :mod:`amlpkg.packager.targets.attach`, which starts the
container, copies its output here and forwards a Ctrl-C; the container is removed
afterwards. The run's tags name the engine and the image id (a content digest), so
``amlpkg runs reproduce`` runs the same image on the same host.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.build.engine import docker_client
from amlpkg.packager.targets.docker import IMAGE_ID_TAG, IMAGE_TAG, run_image
from amlpkg.trainer.remote.config import TRACKING_TOKEN_ENV, TRACKING_URI_ENV, is_loopback
from amlpkg.trainer.snapshot import project_tarball
from amlpkg.trainer.targets import Launch, RunContext
from amlpkg.trainer.tracking import RUN_ID_ENV

HOST_TAG = "target.docker_host"
CODE_DIR = "/amlpkg/code"
_PASSED_ENV = (RUN_ID_ENV, TRACKING_URI_ENV, TRACKING_TOKEN_ENV)
SERVER_HINT = (
    "start a team server the remote host can reach (amlpkg server --host ADDRESS) and log in"
    " to it (amlpkg login URL, or AMLPKG_TRACKING_URI and AMLPKG_TRACKING_TOKEN), then run again"
)


def _quiet(message: str) -> None:
    del message


def parse_ssh_host(spec: str) -> str:
    """``ssh://[USER@]HOST[:PORT]`` checked and normalized (no path, query or password)."""
    try:
        parts = urlsplit(spec)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid ssh target {spec!r}: {exc}") from None
    if parts.scheme != "ssh" or not parts.hostname or parts.password is not None:
        raise InvalidArgumentError(
            f"invalid ssh target {spec!r}", hint="use ssh://USER@HOST[:PORT] (keys, no password)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidArgumentError(
            f"invalid ssh target {spec!r}: no path, query or fragment",
            hint="use ssh://USER@HOST[:PORT]",
        )
    user = f"{parts.username}@" if parts.username else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"ssh://{user}{host}{f':{port}' if port else ''}"


def check_reachable(host: str, tracking_uri: str | None) -> None:
    """Refuse a run the container on ``host`` could not record (see the module's notes):
    one without a team server (``tracking_uri`` None), or with one on a loopback URL."""
    if not tracking_uri:
        raise FailedPreconditionError(
            f"a run on {host} cannot record into the workspace on this machine", hint=SERVER_HINT
        )
    if is_loopback(tracking_uri):
        raise FailedPreconditionError(
            f"the tracking server {tracking_uri} is this machine's loopback address, which a"
            f" container on {host} cannot reach",
            hint=SERVER_HINT,
        )


@dataclass
class RemoteDockerTarget:
    """Run in a container on the Docker engine at ``host`` (``ssh://USER@HOST[:PORT]``)."""

    host: str
    image: str | None = None  # None: built from the run's environment, on that engine
    requirements: Path | None = None
    on_status: Callable[[str], None] = _quiet
    name: str = field(default="ssh", init=False)

    def prepare(self, run: RunContext, command: list[str]) -> Launch:
        """Build or find the image there, create the container with the code in it."""
        import docker

        check_reachable(self.host, None if run.workspace else run.env.get(TRACKING_URI_ENV))
        code, truncated = project_tarball(run.workdir, run.snapshot_max_bytes)
        if truncated:
            raise FailedPreconditionError(
                f"the working directory holds over {run.snapshot_max_bytes} bytes of files, the"
                " cap on what is copied to the remote container",
                hint="run from a smaller folder, or raise AMLPKG_SNAPSHOT_MAX_BYTES",
            )
        ref, image_id = run_image(run, self.image, self.requirements, self.on_status, self.host)
        container = f"amlpkg-run-{run.run_id[:16]}"
        self.on_status(f"creating {container} on {self.host}")
        client = docker_client(host=self.host)
        try:
            client.api.create_container(
                image_id,
                command=command,
                name=container,
                working_dir=CODE_DIR,
                environment={k: run.env[k] for k in _PASSED_ENV if k in run.env},
                host_config=client.api.create_host_config(init=True),
            )
            if not client.api.put_archive(container, CODE_DIR, code):
                raise FailedPreconditionError(f"the code could not be copied into {container}")
        except docker.errors.APIError as exc:
            _remove(self.host, container)
            raise FailedPreconditionError(
                f"the Docker engine at {self.host} refused the container: {exc.explanation or exc}"
            ) from exc
        except BaseException:
            _remove(self.host, container)
            raise
        finally:
            client.close()
        argv = [sys.executable, "-m", "amlpkg.packager.targets.attach", self.host, container]
        tags = {HOST_TAG: self.host, IMAGE_TAG: ref, IMAGE_ID_TAG: image_id}
        return Launch(
            argv=argv,
            env={k: v for k, v in run.env.items() if k not in _PASSED_ENV},
            tags=tags,
            cleanup=lambda: _remove(self.host, container),
        )


def _remove(host: str, container: str) -> None:
    """Remove ``container`` (running or not) from the engine at ``host``; quiet if gone."""
    import docker

    client = docker_client(host=host)
    try:
        client.api.remove_container(container, force=True)
    except docker.errors.NotFound:
        pass
    finally:
        client.close()
