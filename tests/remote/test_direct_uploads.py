"""Large files from the client straight to the team server's bucket (presigned URLs), on a
real ``amlpkg server`` over PostgreSQL and SeaweedFS: the commit is checked before any row
is written, and a server keeping artifacts in a folder still takes files through itself.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.server import audit
from amlpkg.settings import WorkspaceSettings
from amlpkg.store import s3_direct
from amlpkg.store.s3 import S3ArtifactStore
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.remote.direct import THRESHOLD_ENV
from tests.remote.conftest import AMLPKG, TeamServer, amlpkg
from tests.services import free_port
from tests.store.conftest import TeamStore, team_store  # noqa: F401 - the fixture
from tests.trainer.conftest import make_onnx


class BucketServer(TeamServer):
    """A server over PostgreSQL and an S3 prefix (the store's URLs, not a folder)."""

    team: TeamStore

    def start(self) -> None:
        """Start it with ``--store`` and ``--artifacts`` and wait for ``/health``."""
        argv = [AMLPKG, "server", "--store", self.team.store, "--artifacts", self.team.artifacts]
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [*argv, "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "AMLPKG_HOME": str(self.home)},
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not _healthy(self.url):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def bucket_server(team_store: TeamStore, tmp_path: Path) -> Iterator[BucketServer]:  # noqa: F811
    yield from _bucket_server(team_store, tmp_path)


def _bucket_server(team_store: TeamStore, tmp_path: Path) -> Iterator[BucketServer]:  # noqa: F811
    server = BucketServer(tmp_path / "server-home", free_port(), tmp_path / "server.log")
    server.team = team_store
    env = {"AMLPKG_HOME": str(server.home)}
    for role in ("reader", "contributor"):
        done = amlpkg("server", "--store", team_store.store, "token", "create", "--role", role,
                      "--name", role, "--json", env=env)  # fmt: skip
        server.tokens[role] = done.stdout.split('"token": "')[1].split('"')[0]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(bucket_server: BucketServer) -> Iterator[httpx.Client]:
    with bucket_server.api("contributor") as client:
        yield client


def _client(server: TeamServer) -> TeamClient:
    return TeamClient(Server(server.url, server.tokens["contributor"]))


def _actions(team: TeamStore, home: Path) -> list[str]:
    with open_workspace(home, store=team.store, artifacts=team.artifacts) as ws:
        return [e.action for e in reversed(audit.entries(ws))]


def test_large_files_go_straight_to_the_bucket(
    bucket_server: BucketServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(THRESHOLD_ENV, "1000")
    data = os.urandom(200_000)
    (tmp_path / "weights.bin").write_bytes(data)
    model = make_onnx(tmp_path / "net.onnx", weight_bytes=4000)
    with _client(bucket_server) as client:
        run = client.create_run("exp", None)["id"]
        stored = client.upload_artifact(run, "big/weights.bin", tmp_path / "weights.bin")
        assert stored == {"path": "big/weights.bin", "sha256": _sha(data), "size": len(data)}
        assert client.list_artifacts(run) == [stored]
        version = client.upload_version("net", model, run=run, description="direct")
        assert (version["version"], version["source"], version["run_id"]) == (1, "net.onnx", run)
        assert version["sha256"] == _sha(model.read_bytes())
        small = tmp_path / "small.txt"
        small.write_bytes(b"below the threshold")
        client.upload_artifact(run, "small.txt", small)  # through the server, as before
        got = client.request("GET", f"/runs/{run}/artifacts/big/weights.bin").content
    assert got == data
    actions = _actions(bucket_server.team, tmp_path / "reader-home")
    grant, commit = "POST /api/v1/uploads", "POST /api/v1/uploads/{upload_id}"
    assert actions[-5:] == [
        grant, f"{commit}/artifact", grant, f"{commit}/model-version",
        "PUT /api/v1/runs/{run}/artifacts/{path}",
    ]  # fmt: skip


def test_a_tampered_upload_is_refused_and_records_nothing(
    bucket_server: BucketServer, api: httpx.Client
) -> None:
    data, other = os.urandom(5000), os.urandom(5000)
    run = api.post("/runs", json={"experiment": "exp"}).json()["id"]
    grant = api.post("/uploads", json={"sha256": _sha(data), "size": len(data)}).json()
    # The bucket refuses other bytes under the signed checksum; without it, the signature.
    assert httpx.put(grant["urls"][0], content=other, headers=grant["headers"]).status_code == 400
    assert httpx.put(grant["urls"][0], content=other).status_code == 403
    commit = {"sha256": _sha(data), "size": len(data), "run": run, "path": "x.bin"}
    early = api.post(f"/uploads/{grant['upload_id']}/artifact", json=commit)
    assert early.status_code == 400 and "holds no object" in early.json()["error"]
    assert httpx.put(grant["urls"][0], content=data, headers=grant["headers"]).status_code == 200
    url = f"/uploads/{grant['upload_id']}/artifact"
    lying = api.post(url, json={**commit, "sha256": _sha(other)})
    assert lying.status_code == 400 and "not the" in lying.json()["error"]
    assert api.get(f"/runs/{run}/artifacts").json() == []
    bad_id = api.post("/uploads/not-an-id/artifact", json=commit)
    assert bad_id.status_code == 400, bad_id.text
    with bucket_server.api("reader") as reader:
        refused = reader.post("/uploads", json={"sha256": _sha(data), "size": 1})
    assert refused.status_code == 403


_DIES_BEFORE_COMMIT = """
import sys
from pathlib import Path
from amlpkg.trainer.remote.client import TeamClient, file_sha256
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.remote import direct
client = TeamClient(Server(sys.argv[1], sys.argv[2]))
path = Path(sys.argv[3])
digest, size = file_sha256(path)
sent = direct.send(client, path, digest, size)
print(sent["upload_id"], flush=True)
import time
time.sleep(120)  # killed here: sent to the bucket, never committed
"""


def test_a_client_killed_before_its_commit_leaves_no_artifact(
    bucket_server: BucketServer, api: httpx.Client, tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    (tmp_path / "f.bin").write_bytes(data)
    run = api.post("/runs", json={"experiment": "exp"}).json()["id"]
    with subprocess.Popen(
        [sys.executable, "-c", _DIES_BEFORE_COMMIT, bucket_server.url,
         bucket_server.tokens["contributor"], str(tmp_path / "f.bin")],
        stdout=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdout is not None
        upload_id = child.stdout.readline().strip()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert len(upload_id) == 32
    assert api.get(f"/runs/{run}/artifacts").json() == []
    team = bucket_server.team
    with open_workspace(tmp_path / "check", store=team.store, artifacts=team.artifacts) as ws:
        assert isinstance(ws.artifacts, S3ArtifactStore)
        assert not ws.artifacts.exists(_sha(data))  # only a temporary object, cleaned up later
        assert ws.artifacts.remove_stale_temp_files() >= 1


def test_a_folder_store_takes_large_files_through_the_server(
    team: TeamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(THRESHOLD_ENV, "10")
    with team.api("contributor") as api:
        off = api.post("/uploads", json={"sha256": "0" * 64, "size": 100})
    assert off.status_code == 409 and off.json()["code"] == "direct_uploads_off"
    (tmp_path / "f.bin").write_bytes(b"y" * 5000)
    with _client(team) as client:
        run = client.create_run("exp", None)["id"]
        stored = client.upload_artifact(run, "f.bin", tmp_path / "f.bin")
    assert stored["size"] == 5000 and stored["sha256"] == _sha(b"y" * 5000)


def test_urls_are_signed_for_the_public_endpoint_when_one_is_set(
    team_store: TeamStore,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server reaches the bucket at 127.0.0.1; its clients are told ``localhost``
    (standing for a cluster-internal name and the public one)."""
    internal = os.environ["AMLPKG_S3_ENDPOINT_URL"]
    public = internal.replace("127.0.0.1", "localhost")
    assert public != internal
    monkeypatch.setenv("AMLPKG_S3_PUBLIC_ENDPOINT_URL", public)
    data = os.urandom(5000)
    for server in _bucket_server(team_store, tmp_path):
        with server.api("contributor") as api:
            run = api.post("/runs", json={"experiment": "exp"}).json()["id"]
            grant = api.post("/uploads", json={"sha256": _sha(data), "size": len(data)}).json()
            [url] = grant["urls"]
            assert url.startswith(f"{public}/") and "127.0.0.1" not in url
            assert httpx.put(url, content=data, headers=grant["headers"]).status_code == 200
            commit = {"sha256": _sha(data), "size": len(data), "run": run, "path": "p.bin"}
            done = api.post(f"/uploads/{grant['upload_id']}/artifact", json=commit)
            assert done.status_code == 201, done.text
            assert api.get(f"/runs/{run}/artifacts/p.bin").content == data
    # Multipart: every part's URL on the public endpoint; the bucket joins the parts.
    big = os.urandom(s3_direct.MIN_PART_BYTES + 1000)
    with open_workspace(tmp_path / "mp", store=team_store.store,
                        artifacts=team_store.artifacts) as ws:  # fmt: skip
        assert isinstance(ws.artifacts, S3ArtifactStore)
        grant_mp = s3_direct.start(ws.artifacts, _sha(big), len(big),
                                   part_bytes=s3_direct.MIN_PART_BYTES)  # fmt: skip
        assert len(grant_mp.urls) == math.ceil(len(big) / grant_mp.part_bytes) == 2
        assert all(u.startswith(f"{public}/") for u in grant_mp.urls)
        etags = []
        for n, part_url in enumerate(grant_mp.urls):
            chunk = big[n * grant_mp.part_bytes : (n + 1) * grant_mp.part_bytes]
            sent = httpx.put(part_url, content=chunk)
            assert sent.status_code == 200, sent.text
            etags.append(sent.headers["etag"])
        s3_direct.finish(ws.artifacts, grant_mp.upload_id, _sha(big), len(big),
                         multipart_id=grant_mp.multipart_id, etags=etags)  # fmt: skip
        assert ws.artifacts.exists(_sha(big))


def test_a_public_endpoint_that_is_no_url_is_refused(
    team_store: TeamStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidArgumentError, match="is not a URL") as err:
        open_workspace(tmp_path / "bad", settings=WorkspaceSettings(
            home=tmp_path / "bad", store=team_store.store, artifacts=team_store.artifacts,
            s3_public_endpoint_url="seaweedfs:8333",
        ))  # fmt: skip
    assert err.value.hint is not None and "AMLPKG_S3_PUBLIC_ENDPOINT_URL" in err.value.hint


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
