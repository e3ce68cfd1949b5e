"""Shared fixtures of the packager tests: a locally made base image, a trained and
registered model, and ONE scoring image built (and pushed) from it per session.

Docker builds cost time on 2 cores, so tests share :func:`built_image` instead of
building their own. Everything that needs Docker or the registry goes through
``tests.services.require``: skipped on a laptop without them, a failure in CI.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.services import REGISTRY, docker_available, free_port, registry_available, require

if TYPE_CHECKING:
    from amlpkg.store.workspace import Workspace


@dataclass(frozen=True)
class TrainedModel:
    """A workspace home holding a model version made by the trainer (with its run)."""

    home: Path
    ref: str
    run_id: str
    amlpkg_wheel: Path
    """Built once: every build of the session ships the same amlpkg (others may be
    editing the checkout meanwhile)."""


@dataclass(frozen=True)
class Running:
    """A started container and its host ports."""

    container: Any
    http_port: int
    grpc_port: int


@contextlib.contextmanager
def scorer_workspace(folder: Path) -> Iterator[Workspace]:
    """A workspace in ``folder/home`` with ``scorer:1``, a small MLP (4 -> 8 -> 3)."""
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.registry import register
    from tests.runtime import toy_models

    with open_workspace(folder / "home") as workspace:
        path = toy_models.save(toy_models.mlp_model((4, 8, 3)), folder / "m", "scorer")
        register("scorer", path, workspace=workspace)
        yield workspace


@pytest.fixture(scope="session")
def local_base_image() -> str:
    """The tag of the Debian base made with debootstrap (made once per machine)."""
    require(docker_available(), "a Docker engine is needed")
    from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base

    ensure_local_base()
    return LOCAL_BASE_TAG


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The quickstart's iris classifier: trained as a tracked run, exported, registered."""
    from amlpkg.trainer.quickstart import run_quickstart

    home = tmp_path_factory.mktemp("build") / "home"
    from amlpkg.packager.build.wheelhouse import amlpkg_wheel

    result = run_quickstart(home, folds=2)
    wheel = amlpkg_wheel(home / "cache")
    return TrainedModel(home, result.model_version.ref, result.run_id, wheel)


@pytest.fixture(scope="session")
def built_image(local_base_image: str, trained_model: TrainedModel) -> Iterator[Any]:
    """The trained model's CPU image, built on the local base and pushed to the registry."""
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.image import remove_image
    from amlpkg.packager.build.options import BuildOptions
    from amlpkg.store.workspace import open_workspace

    tag = f"{REGISTRY}/amlpkg-test/iris:{uuid.uuid4().hex[:8]}"
    options = BuildOptions(
        base_image=local_base_image, tag=tag, push=True, amlpkg_wheel=trained_model.amlpkg_wheel
    )
    with open_workspace(trained_model.home) as ws:
        package = build_image(ws, trained_model.ref, options)
    yield package
    remove_image(tag)


def wait_ready(port: int, timeout_s: float = 90.0) -> None:
    """Poll ``/v2/health/ready`` until 200 (bounded); fail with the reason otherwise."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/v2/health/ready", timeout=2
            ) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            # docker-proxy accepts before the server listens: resets are expected here.
            # Keep only the text: a kept traceback would keep its socket alive.
            last = repr(exc)
        time.sleep(0.25)
    pytest.fail(f"server on port {port} not ready after {timeout_s} s: {last}")


@pytest.fixture
def run_image() -> Iterator[Any]:
    """``run_image(ref) -> Running``: start a container on free ports; removed afterwards."""
    import docker

    client = docker.from_env()
    started: list[Any] = []

    def run(ref: str) -> Running:
        http_port, grpc_port = free_port(), free_port()
        container = client.containers.run(
            ref,
            detach=True,
            ports={"8000/tcp": ("127.0.0.1", http_port), "8001/tcp": ("127.0.0.1", grpc_port)},
        )
        started.append(container)
        try:
            wait_ready(http_port)
        except BaseException:
            print(container.logs().decode(errors="replace")[-3000:])
            raise
        return Running(container, http_port, grpc_port)

    yield run
    for container in started:
        container.remove(force=True)
    client.close()
