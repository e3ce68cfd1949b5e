"""``amlpkg run --target docker[:IMAGE]``: the command runs in a container.

Without IMAGE, the image is built from the run's environment (its Python version and
``requirements.txt``, see :mod:`amlpkg.packager.targets.env_image`); with IMAGE, that
image is used as it is (it needs Python and amlpkg for ``amlpkg.log_*``). Either way
the run records the image and its id (a content digest), so ``amlpkg runs reproduce``
runs the same bytes again.

The container sees the working directory and the workspace at their host paths (bind
mounts), runs as the caller's uid/gid (files it writes stay the caller's) and gets
``AMLPKG_RUN_ID`` and the workspace's variables (``AMLPKG_HOME``, ...) or the team
server's (``AMLPKG_TRACKING_URI``/``_TOKEN``, passed by name so no value is in an argv;
on the host's network when the server's URL is a loopback one): the script's
``amlpkg.log_*`` land in this run. The
runner's child is the ``docker run`` client, attached, so output is teed and a Ctrl-C
is forwarded like for a local command; the container is removed afterwards whatever
happened to the client.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amlpkg.errors import FailedPreconditionError, NotFoundError
from amlpkg.packager.build.errors import BuildError
from amlpkg.packager.build.image import inspect_image
from amlpkg.packager.targets.env_image import ensure_env_image, read_requirements
from amlpkg.trainer.remote.config import TRACKING_TOKEN_ENV, TRACKING_URI_ENV, is_loopback
from amlpkg.trainer.targets import Launch, RunContext
from amlpkg.trainer.tracking import RUN_ID_ENV

IMAGE_TAG = "target.image"
IMAGE_ID_TAG = "target.image_id"
REQUIREMENTS_ARTIFACT = "environment/target-requirements.txt"
# What the container gets from the runner's environment; nothing else of the host's.
PASSED_ENV = (
    RUN_ID_ENV,
    "AMLPKG_HOME",
    "AMLPKG_STORE",
    "AMLPKG_ARTIFACTS",
    "AMLPKG_S3_ENDPOINT_URL",
    TRACKING_URI_ENV,
    TRACKING_TOKEN_ENV,
)
_REMOVE_TIMEOUT_S = 60


def _quiet(message: str) -> None:
    del message


def _docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        raise FailedPreconditionError(
            "the docker client is not installed",
            hint="apt-get install docker.io (or docker-ce-cli)",
        )
    return found


def run_image(
    run: RunContext,
    image: str | None,
    requirements: Path | None,
    on_status: Callable[[str], None],
    host: str | None = None,
) -> tuple[str, str]:
    """``(reference, image id)`` the run's command runs in, on the engine at ``host``.

    ``image`` as it is, or (None) the image of the run's Python and requirements (from
    ``requirements``, else ``requirements.txt`` in the working directory), built unless
    it exists; its requirements are stored as an artifact of the run.
    """
    if image is not None:
        try:
            found = inspect_image(image, host=host)
        except BuildError as exc:
            where = f"the Docker engine at {host}" if host else "the Docker engine"
            raise NotFoundError(
                f"no image {image} in {where}", hint=f"docker pull {image}"
            ) from exc
        return image, found.id
    path = requirements or run.workdir / "requirements.txt"
    if requirements is not None and not path.is_file():
        raise NotFoundError(f"requirements file {path} does not exist")
    lines = read_requirements(path) if path.is_file() else []
    run.add_artifact(REQUIREMENTS_ARTIFACT, "".join(f"{line}\n" for line in lines).encode())
    built = ensure_env_image(
        lines,
        python_version=platform.python_version(),
        cache_root=run.cache_root,
        on_status=on_status,
        host=host,
    )
    return built.ref, built.id


@dataclass
class DockerTarget:
    """Run in a container of ``image`` (None: built from the run's environment)."""

    image: str | None = None
    requirements: Path | None = None  # None: requirements.txt in the working dir, if any
    on_status: Callable[[str], None] = _quiet
    name: str = field(default="docker", init=False)

    def prepare(self, run: RunContext, command: list[str]) -> Launch:
        """Build or find the image; the ``docker run`` command line that runs ``command``."""
        cli = _docker_cli()
        ref, image_id = run_image(run, self.image, self.requirements, self.on_status)
        workdir, env = run.workdir, run.env
        container = f"amlpkg-run-{run.run_id[:16]}"
        argv = [cli, "run", "--rm", "--init", "--name", container, "--user",
                f"{os.getuid()}:{os.getgid()}", "--workdir", str(workdir),
                "--volume", f"{workdir}:{workdir}"]  # fmt: skip
        if run.workspace is not None and run.workspace.embedded:
            # The folder store: the container opens the same files.
            home = run.workspace.home
            argv += ["--volume", f"{home}:{home}"]
        if is_loopback(env.get(TRACKING_URI_ENV, "http://remote")):
            # A team server on this machine's loopback: the container shares its network.
            argv += ["--network", "host"]
        for key in PASSED_ENV:
            if key in env:
                argv += ["--env", key]  # the value from the client's environment, not argv
        argv += [image_id, *command]

        def remove() -> None:
            # The client may have been killed with the container still running.
            subprocess.run(  # noqa: S603 - fixed argv
                [cli, "rm", "--force", container],
                capture_output=True, timeout=_REMOVE_TIMEOUT_S, check=False,
            )  # fmt: skip

        tags = {IMAGE_TAG: ref, IMAGE_ID_TAG: image_id}
        child_env = {**os.environ, **{k: env[k] for k in PASSED_ENV if k in env}}
        return Launch(argv=argv, env=child_env, tags=tags, cleanup=remove)
