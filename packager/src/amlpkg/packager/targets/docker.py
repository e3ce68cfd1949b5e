"""``amlpkg run --target docker[:IMAGE]``: the command runs in a container.

Without IMAGE, the image is built from the run's environment (its Python version and
``requirements.txt``, see :mod:`amlpkg.packager.targets.env_image`); with IMAGE, that
image is used as it is (it needs Python and amlpkg for ``amlpkg.log_*``). Either way
the run records the image and its id (a content digest), so ``amlpkg runs reproduce``
runs the same bytes again.

The container sees the working directory and the workspace at their host paths (bind
mounts), runs as the caller's uid/gid (files it writes stay the caller's) and gets
``AMLPKG_RUN_ID``/``AMLPKG_HOME``: the script's ``amlpkg.log_*`` land in this run. The
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
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store import runs as store_runs
from amlpkg.trainer.targets import Launch
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


@dataclass
class DockerTarget:
    """Run in a container of ``image`` (None: built from the run's environment)."""

    image: str | None = None
    requirements: Path | None = None  # None: requirements.txt in the working dir, if any
    on_status: Callable[[str], None] = _quiet
    name: str = field(default="docker", init=False)

    def _image(self, ws: Workspace, run_id: str, workdir: Path) -> tuple[str, str]:
        """``(reference, image id)`` of the image to run in."""
        if self.image is not None:
            try:
                found = inspect_image(self.image)
            except BuildError as exc:
                raise NotFoundError(
                    f"no image {self.image} in the Docker engine", hint=f"docker pull {self.image}"
                ) from exc
            return self.image, found.id
        path = self.requirements or workdir / "requirements.txt"
        requirements = read_requirements(path) if path.is_file() else []
        if self.requirements is not None and not path.is_file():
            raise NotFoundError(f"requirements file {path} does not exist")
        text = "".join(f"{line}\n" for line in requirements).encode()
        digest, size = ws.artifacts.put_bytes(text)
        store_runs.add_artifact(ws, run_id, REQUIREMENTS_ARTIFACT, digest, size)
        built = ensure_env_image(
            requirements,
            python_version=platform.python_version(),
            cache_root=ws.home / "cache",
            on_status=self.on_status,
        )
        return built.ref, built.id

    def prepare(
        self, ws: Workspace, run_id: str, command: list[str], workdir: Path, env: dict[str, str]
    ) -> Launch:
        """Build or find the image; the ``docker run`` command line that runs ``command``."""
        cli = _docker_cli()
        ref, image_id = self._image(ws, run_id, workdir)
        container = f"amlpkg-run-{run_id[:16]}"
        argv = [cli, "run", "--rm", "--init", "--name", container, "--user",
                f"{os.getuid()}:{os.getgid()}", "--workdir", str(workdir),
                "--volume", f"{workdir}:{workdir}"]  # fmt: skip
        if ws.embedded:  # the folder store: the container opens the same files
            argv += ["--volume", f"{ws.home}:{ws.home}"]
        for key in PASSED_ENV:
            if key in env:
                argv += ["--env", f"{key}={env[key]}"]
        argv += [image_id, *command]

        def remove() -> None:
            # The client may have been killed with the container still running.
            subprocess.run(  # noqa: S603 - fixed argv
                [cli, "rm", "--force", container],
                capture_output=True, timeout=_REMOVE_TIMEOUT_S, check=False,
            )  # fmt: skip

        tags = {IMAGE_TAG: ref, IMAGE_ID_TAG: image_id}
        return Launch(argv=argv, env=dict(os.environ), tags=tags, cleanup=remove)
