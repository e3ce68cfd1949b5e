"""``--target docker``: the stable endpoint lives on the Docker host (the proxy container).

Real images and the real engine, as in ``test_deploy_docker.py`` (whose module
fixtures build them). The endpoint keeps serving with no amlpkg process and no
workspace state on the client, across a blue/green switch under load, across a
``docker restart`` of the proxy, and splits requests by weight for a canary.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest

from amlpkg.packager.deploy import api, canary, records
from amlpkg.packager.deploy.smoke import wait_ready
from amlpkg.store.workspace import Workspace, open_workspace
from tests.packager import test_deploy_docker as images
from tests.packager.test_deploy_docker import _containers, _deploy, _gone
from tests.packager.test_deploy_local import _score_http, _while_scoring

built, ws = images.built, images.ws  # the images and the workspace of those tests


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_endpoint_lives_on_the_host_and_outlives_the_client(
    ws: Workspace, built: tuple[Path, dict[int, str]]
) -> None:
    first = _deploy(ws, 1, "onhost")
    assert first.endpoint_http is not None
    # No supervisor or other state of the client: the workspace holds records only.
    assert not (ws.home / "deployments" / "onhost").exists()
    (proxy,) = _containers("onhost", role="proxy")
    assert proxy.labels["ai.amlpkg.deployment"] == "onhost"
    assert _score_http(first.endpoint_http) == 1

    # A fresh workspace handle (another client, nothing in memory) finds it on the host.
    with open_workspace(built[0]) as other:
        live = api.status("onhost", workspace=other)["live"]
    assert live["proxy"] == "running" and live["ready"] is True
    assert live["endpoint_http"] == first.endpoint_http
    assert live["serving"] == [{"id": "onhost:1", "weight": 100.0}]

    scorers = _while_scoring(first, lambda: _deploy(ws, 2, "onhost"))
    for scorer in scorers:
        assert scorer.failures == [], scorer.failures[:3]
        assert scorer.versions[0] == 1 and scorer.versions[-1] == 2
    assert [c.labels["ai.amlpkg.revision"] for c in _containers("onhost")] == ["onhost:2"]

    # The proxy comes back from a restart on the same port and the same backend.
    stable = [_docker("port", proxy.name, port) for port in ("8000/tcp", "8001/tcp")]
    _docker("restart", "--time", "1", proxy.name)
    assert [_docker("port", proxy.name, port) for port in ("8000/tcp", "8001/tcp")] == stable
    wait_ready(first.endpoint_http, timeout_s=30)  # the proxy process is listening again
    assert _score_http(first.endpoint_http) == 2
    assert records.serving(ws, "onhost") == records.get(ws, "onhost:2")

    scorers = _while_scoring(first, lambda: api.rollback("onhost", workspace=ws))
    for scorer in scorers:
        assert scorer.failures == [], scorer.failures[:3]
        assert scorer.versions[-1] == 1
    assert _score_http(first.endpoint_http) == 1

    api.delete("onhost", workspace=ws)
    assert _gone("onhost")
    assert records.serving(ws, "onhost") is None


def test_a_canary_takes_its_share_then_is_rolled_back_or_promoted(ws: Workspace) -> None:
    first = _deploy(ws, 1, "weighted")
    assert first.endpoint_http is not None
    second = _deploy(ws, 2, "weighted", canary_percent=10)
    assert second.state["canary"]["stable"] == "weighted:1"
    assert records.get(ws, "weighted:1").status == "ready"  # both serve
    assert len(_containers("weighted")) == 2
    with httpx.Client() as client:  # one keep-alive connection: shares count requests
        hits = Counter(_score_http(first.endpoint_http, client) for _ in range(400))
    # Binomial(400, 0.1): mean 40, standard deviation 6.
    assert 20 <= hits[2] <= 80 and hits[1] + hits[2] == 400, hits

    rolled = canary.roll_back(ws, None, "weighted", "by hand")
    assert rolled.status == "stopped" and rolled.state["canary"]["decision"] == "rolled_back"
    assert {_score_http(first.endpoint_http) for _ in range(30)} == {1}
    assert [c.labels["ai.amlpkg.revision"] for c in _containers("weighted")] == ["weighted:1"]

    _deploy(ws, 2, "weighted", canary_percent=50)
    promoted = canary.promote(ws, None, "weighted")
    assert promoted.state["canary"]["decision"] == "promoted"
    assert records.get(ws, "weighted:1").status == "stopped"
    assert records.serving(ws, "weighted") == records.get(ws, "weighted:3")
    assert {_score_http(first.endpoint_http) for _ in range(30)} == {2}
    assert [c.labels["ai.amlpkg.revision"] for c in _containers("weighted")] == ["weighted:3"]
    api.delete("weighted", workspace=ws)
    assert _gone("weighted")


def test_an_image_without_the_proxy_fails_clearly_and_leaves_nothing(ws: Workspace) -> None:
    """An image built before the proxy existed (here: the bare base image) cannot hold the
    endpoint: the deploy says so, with what to do, and nothing of it stays on the host."""
    import docker

    from amlpkg.errors import FailedPreconditionError
    from amlpkg.packager.build.base_image import LOCAL_BASE_TAG
    from amlpkg.packager.deploy.targets import docker_switch

    client = docker.from_env()
    try:
        with pytest.raises(FailedPreconditionError, match="did not start") as caught:
            docker_switch.ensure(
                client, "noproxy", LOCAL_BASE_TAG, bind="127.0.0.1", http_port=0, grpc_port=0
            )
        assert "amlpkg build" in (caught.value.hint or "")
    finally:
        client.close()
    assert _gone("noproxy")
