"""`amlpkg devices tag|import-tags` against a real team server: the server writes the tags
with the store's own function, audited; readers and oversized or malformed patches are
refused with a 4xx that says what to fix; `devices list|show` read them back."""

from __future__ import annotations

import json
from typing import Any

from amlpkg.packager.rollout.twins import twin_tag_pages
from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote import edge_records
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from tests.remote.conftest import TeamServer, amlpkg
from tests.rollout.test_drift_tags_lineage import FakeRegistry


def _show(team: TeamServer, device: str) -> dict[str, Any]:
    done = amlpkg("devices", "show", device, "--json", env=team.env("reader"))
    return dict(json.loads(done.stdout))


def test_devices_tag_writes_on_the_server(team: TeamServer) -> None:
    env = team.env("contributor")
    done = amlpkg("devices", "tag", "plant-7", "site=north", "line=3", "--json", env=env)
    assert json.loads(done.stdout)["tags"] == {"line": "3", "site": "north"}
    done = amlpkg("devices", "tag", "plant-7", "zone=b", "--remove", "line", env=env)
    assert "plant-7: tags site=north, zone=b" in done.stdout
    assert _show(team, "plant-7")["tags"] == {"site": "north", "zone": "b"}
    listed = amlpkg("devices", "list", "--json", env=env)
    assert [d["tags"] for d in json.loads(listed.stdout)] == [{"site": "north", "zone": "b"}]
    with open_workspace(team.home) as ws:
        actions = [e.action for e in audit.entries(ws)]
    assert actions.count("PATCH /api/v1/device-records/{device_id}/tags") == 2


def test_a_reader_and_bad_tags_are_refused(team: TeamServer) -> None:
    refused = amlpkg("devices", "tag", "cam-1", "a=b", env=team.env("reader"), check=False)
    assert refused.returncode != 0 and "contributor" in refused.stderr
    assert "Traceback" not in refused.stderr
    env = team.env("contributor")
    bad = amlpkg("devices", "tag", "cam-1", "bad name=x", env=env, check=False)
    assert bad.returncode != 0 and "is not NAME" in bad.stderr
    with team.api("contributor") as api:
        long_value = api.patch("/device-records/cam-1/tags", json={"tags": {"a": "x" * 257}})
        assert long_value.status_code == 400, long_value.text
        many = {f"k{i}": "v" for i in range(65)}
        too_many = api.patch("/device-records/cam-1/tags", json={"tags": many})
        assert too_many.status_code == 400 and "more than 64 tags" in too_many.text
        crowd: dict[str, dict[str, str]] = {f"d{i}": {} for i in range(1001)}
        assert api.put("/device-records/tags", json={"devices": crowd}).status_code == 400
        huge = {"tags": {f"k{i}": "v" * 256 for i in range(20_000)}}
        assert api.patch("/device-records/cam-1/tags", json=huge).status_code in (400, 413)
    assert "cam-1" not in amlpkg("devices", "list", env=env).stdout  # nothing was written


def test_import_tags_sends_the_hubs_pages(team: TeamServer, monkeypatch: Any) -> None:
    from azure.iot.hub.models import Twin

    # No IoT Hub can run here: the twin query is answered by a stand-in registry.
    twins = [Twin(device_id=f"cam-{i}", tags={"region": "eu", "site": {"line": i}})
             for i in range(7)] + [Twin(device_id="odd", tags={"bad name": "x"})]  # fmt: skip
    monkeypatch.setattr(edge_records, "DEVICES_PER_REQUEST", 3)  # several requests
    with TeamClient(Server(team.url, team.tokens["contributor"])) as client:
        edge_records.tag_device(client, "cam-0", {"old": "gone"})
        done = edge_records.import_tags(client, twin_tag_pages(FakeRegistry(twins), page=4))
    assert done["imported"] == [f"cam-{i}" for i in range(7)]
    assert list(done["refused"]) == ["odd"] and "is not NAME" in done["refused"]["odd"]
    assert _show(team, "cam-0")["tags"] == {"region": "eu", "site.line": "0"}  # the hub's only
    with open_workspace(team.home) as ws:
        actions = [e.action for e in audit.entries(ws)]
    assert actions.count("PUT /api/v1/device-records/tags") == 3
    reader = amlpkg("devices", "import-tags", env={**team.env("reader"),
                    "AMLPKG_IOTHUB_CONNECTION_STRING": "HostName=h;SharedAccessKeyName=k;"
                    "SharedAccessKey=a2V5"}, check=False)  # fmt: skip
    assert reader.returncode != 0 and "reader token may not" in reader.stderr
