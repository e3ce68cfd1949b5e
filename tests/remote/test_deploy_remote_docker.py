"""`amlpkg deploy --target docker` against a real team server and the real Docker engine: the
image `amlpkg build` made here from the server's version (its package recorded there) is what
runs when no --image is named, and the deployment's rows and lineage land on the server."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from amlpkg.errors import FailedPreconditionError
from amlpkg.packager.deploy import remote
from amlpkg.trainer.remote.config import Server
from tests.packager.test_deploy_docker import _containers, _gone
from tests.packager.test_deploy_local import _score_http
from tests.remote.conftest import TeamServer
from tests.remote.test_deploy_remote import _upload_versions
from tests.services import docker_available, require

pytestmark = pytest.mark.slow
NAME = "remote-dock"
TAG = "amlpkg-remote-deploy-test/scorer"


def _remove(name: str) -> None:
    import docker

    from amlpkg.packager.deploy.targets import docker_switch

    client = docker.from_env()
    try:
        with contextlib.suppress(Exception):
            docker_switch.remove_all(client, name)
    finally:
        client.close()


def test_a_docker_deploy_runs_the_image_built_from_the_servers_version(
    team: TeamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(docker_available(), "a Docker engine is needed")
    from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base
    from amlpkg.packager.build.options import BuildOptions
    from amlpkg.packager.build.remote import build_on_server

    ensure_local_base()
    _upload_versions(team, tmp_path)
    server = Server(team.url, team.tokens["contributor"])
    package = build_on_server(
        server, "scorer:1", BuildOptions(tag=f"{TAG}:1", base_image=LOCAL_BASE_TAG)
    )
    try:
        options = {"cpus": 1, "memory": "512Mi", "drain_grace_s": 0}
        record = remote.deploy(server, "scorer:1", target="docker", name=NAME, options=options)
        assert record.status == "ready" and record.package == package.id
        assert record.image == f"{TAG}:1" and record.image_digest
        assert record.endpoint_http is not None and _score_http(record.endpoint_http) == 1
        assert len(_containers(NAME)) == 1

        with team.api("reader") as api:
            listed = {row["name"]: row for row in api.get("/deployments").json()}
            into = api.get(f"/lineage/deployment/{NAME}:1").json()
        assert listed[NAME]["status"] == "ready" and listed[NAME]["package"] == package.id
        sources = {(e["src_id"], e["relation"]) for e in into["upstream"]}
        assert {("scorer:1", "deployed_as"), (package.id, "deployed_as")} <= sources

        live = remote.status(server, NAME)["live"]
        assert live["container"] == "running" and live["ready"] is True

        # The engine is this machine's (its local socket): another machine is told so.
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))
        with pytest.raises(FailedPreconditionError, match="Docker engine"):
            remote.delete(server, NAME)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

        deleted = remote.delete(server, NAME)
        assert deleted.status == "stopped" and _gone(NAME)
        with team.api("reader") as api:
            assert api.get(f"/deployments/{NAME}").json()[0]["status"] == "stopped"
    finally:
        _remove(NAME)
