"""`amlpkg deploy --target kubernetes` against a real team server. No Kubernetes API server can
run here, so the cluster is kmock's in-memory API (see tests/packager/test_deploy_kubernetes.py
for what that mock does not do), reached through a kubeconfig like a real cluster; the team
server is a real process. A cluster is not tied to the machine that deployed: another machine
(its own cache workspace) checks and deletes the deployment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from amlpkg.packager.deploy import remote
from amlpkg.trainer.remote.config import Server
from tests.packager.test_deploy_kubernetes import _KMock
from tests.remote.conftest import TeamServer
from tests.remote.test_deploy_remote import _upload_versions

pytestmark = pytest.mark.slow
IMAGE = "registry.example/scorer@sha256:" + "b" * 64


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_KMock]:
    """kmock behind a kubeconfig in ``KUBECONFIG``."""
    emulator = _KMock()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "mock",
        "clusters": [{"name": "mock", "cluster": {"server": emulator.url}}],
        "users": [{"name": "me", "user": {}}],
        "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "me"}}],
    }  # fmt: skip
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    # The client reads KUBECONFIG once, when it is imported (other tests may have done so).
    from kubernetes.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    try:
        yield emulator
    finally:
        emulator.close()


def test_kubernetes_deploy_recorded_on_the_server_and_managed_from_another_machine(
    team: TeamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: _KMock
) -> None:
    _upload_versions(team, tmp_path)
    server = Server(team.url, team.tokens["contributor"])
    options = {"image": IMAGE, "wait": False}
    record = remote.deploy(server, "scorer:1", target="kubernetes", name="kweb", options=options)
    assert record.status == "ready" and record.model == "scorer:1" and record.image == IMAGE
    assert record.endpoint_http == "http://kweb.default.svc:8000"
    with team.api("reader") as api:
        (row,) = api.get("/deployments/kweb").json()
        lineage = api.get("/models/scorer/versions/1/lineage").json()
    assert (row["id"], row["status"], row["target"]) == ("kweb:1", "ready", "kubernetes")
    edges = {(e["src_id"], e["relation"], e["dst_id"]) for e in lineage["downstream"]}
    assert ("scorer:1", "deployed_as", "kweb:1") in edges

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))
    live = remote.status(server, "kweb")["live"]
    assert live["objects"] and all(live["objects"].values())
    deleted = remote.delete(server, "kweb")
    assert deleted.status == "stopped" and deleted.reason == "deleted"
    assert not any(remote.status(server, "kweb")["live"]["objects"].values())
    with team.api("reader") as api:
        assert api.get("/deployments/kweb").json()[0]["status"] == "stopped"
