"""Device tags and output histograms on both backends (SQLite, PostgreSQL + S3)."""

from __future__ import annotations

from amlpkg.collector.devices import get, set_tags
from amlpkg.collector.store import TelemetryStore, row_from_device_message
from amlpkg.collector.windows import device_windows
from amlpkg.packager.rollout import fleet
from amlpkg.store.workspace import Workspace


def test_tags_and_output_histograms_round_trip(ws: Workspace) -> None:
    body = {"message_id": "cam-1:1", "device": "cam-1", "model": "m", "version": "1",
            "requests": 7, "outputs": {"130": 5, "131": 2}}  # fmt: skip
    assert TelemetryStore(ws).add([row_from_device_message(body)]) == 1
    assert [w.outputs for w in device_windows(ws, 0)] == [{"130": 5, "131": 2}]
    set_tags(ws, "cam-1", {"region": "eu-west", "site": {"line": 3}})
    set_tags(ws, "cam-2", {"region": "us-east"})
    assert get(ws, "cam-1").tags == {"region": "eu-west", "site.line": "3"}
    assert get(ws, "cam-1").reported_model == "m:1"  # telemetry and tags on one record
    assert fleet(ws, "tags.region=eu-*") == ["cam-1"]
