"""``deploy --target docker`` from a ModelPack ``oci://REGISTRY/REPO@sha256:...`` source.

A signed model is pushed with ``amlpkg push`` to the local registry (127.0.0.1:5000),
deployed by digest into a fresh workspace (fetched, checked, verified with ``--trust``)
and run in the session's scoring image (whose own baked-in model must stay hidden): the
files go into a volume through the engine's archive API, over the local socket and over
``ssh://`` (a real sshd on this machine). Real engine, real registry; everything is
removed by ``delete`` and checked gone.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from amlpkg.packager import deploy as api
from amlpkg.packager.build.records import Package
from amlpkg.packager.deploy.targets.docker import LABEL, ROLE
from amlpkg.store.workspace import Workspace
from tests.packager import test_deploy_oci
from tests.services import REGISTRY, docker_available, registry_available, require, sshd_server
from tests.signing_helpers import make_keypair, signed_versions

pytestmark = pytest.mark.slow
AMLPKG = str(Path(sys.executable).parent / "amlpkg")
# A workspace that never saw the model; its deployments are deleted after.
fresh = test_deploy_oci.fresh


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``adder:2`` signed and pushed as a ModelPack with the CLI; its pinned reference."""
    require(docker_available(), "a Docker engine is needed")
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    root = tmp_path_factory.mktemp("docker-oci")
    key, pub = make_keypair(root, "signer")
    refs = signed_versions(root / "ws", key)
    tag = f"oci://{REGISTRY}/test/docker-oci-{uuid.uuid4().hex[:8]}:v2"
    env = {**os.environ, "AMLPKG_HOME": str(root / "ws"), "COLUMNS": "300"}
    env.pop("AMLPKG_TRACKING_URI", None)
    done = subprocess.run(
        [AMLPKG, "push", refs[1], tag, "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reference = json.loads(done.stdout)["reference"]
    assert "@sha256:" in reference
    return {"reference": reference, "pub": pub}


def _engine_state(name: str) -> tuple[list[Any], list[Any]]:
    """The deployment's revision containers and models volumes on the local engine."""
    import docker

    client = docker.from_env()
    try:
        containers = client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
        volumes = client.volumes.list(filters={"label": f"{LABEL}={name}"})
        return (
            [c for c in containers if c.labels.get(ROLE) == "revision"],
            [v for v in volumes if (v.attrs.get("Labels") or {}).get(ROLE) == "models"],
        )
    finally:
        client.close()


def _infer(endpoint: str) -> list[float]:
    body = {
        "inputs": [
            {"name": n, "shape": [1, 16], "datatype": "FP32", "data": [2.0] * 16}
            for n in ("INPUT0", "INPUT1")
        ]
    }
    answer = httpx.post(f"{endpoint}/v2/models/adder/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["outputs"][0]["data"])


def _deploy_and_check(
    ws: Workspace, pushed: dict[str, Any], image: Package, name: str, **options: Any
) -> None:
    record = api.deploy(
        pushed["reference"], target="docker", name=name, workspace=ws,
        options={"image": image.repo_digest, "trust": pushed["pub"], **options},
    )  # fmt: skip
    assert record.status == "ready", record.reason
    assert record.package == pushed["reference"] and record.model is None
    assert record.endpoint_http is not None
    assert _infer(record.endpoint_http) == [4.0] * 16  # adder: INPUT0 + INPUT1
    # The image's own model is hidden by the volume: only the pushed one is served.
    baked = httpx.get(f"{record.endpoint_http}/v2/models/iris-classifier/ready", timeout=5)
    assert baked.status_code != 200
    (container,) = _engine_state(name)[0]
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert container.labels["ai.amlpkg.model"] == pushed["reference"]
    (mount,) = [m for m in container.attrs["Mounts"] if m["Destination"] == "/models"]
    assert mount["Type"] == "volume" and mount["Name"] == record.state["models_volume"]
    api.delete(name, workspace=ws)
    assert _engine_state(name) == ([], [])


def test_a_modelpack_source_is_fetched_verified_and_served(
    fresh: Workspace, pushed: dict[str, Any], built_image: Package
) -> None:
    _deploy_and_check(fresh, pushed, built_image, "dock-oci")


def test_the_same_path_works_on_a_remote_engine_over_ssh(
    fresh: Workspace,
    pushed: dict[str, Any],
    built_image: Package,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with sshd_server(tmp_path) as (port, home):
        monkeypatch.setenv("HOME", str(home))
        docker_host = f"ssh://{getpass.getuser()}@127.0.0.1:{port}"
        _deploy_and_check(fresh, pushed, built_image, "dock-oci-ssh", docker_host=docker_host)


def test_a_signature_from_another_key_runs_nothing(
    fresh: Workspace, pushed: dict[str, Any], built_image: Package, tmp_path: Path
) -> None:
    from amlpkg.runtime.signing import SignatureError

    _, other = make_keypair(tmp_path, "other")
    with pytest.raises(SignatureError):
        api.deploy(
            pushed["reference"], target="docker", name="dock-oci-bad", workspace=fresh,
            options={"image": built_image.repo_digest, "trust": other},
        )  # fmt: skip
    assert _engine_state("dock-oci-bad") == ([], [])
