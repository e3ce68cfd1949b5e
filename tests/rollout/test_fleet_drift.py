"""Six real edge agents: twin-tag fleets, a drift gate on live outputs, and the lineage.

(a) a version answering like the old one (same outputs) goes through every stage of a
fleet chosen by tags, and only the tagged devices get it; (b) a version whose outputs
are shifted (same speed, no errors) is stopped by ``drift<0.2`` at its first stage and
rolled back; ``amlpkg lineage device:ID`` says which rollout stage put each device on
what it runs. See :mod:`tests.rollout.fleet` for why devices use the standalone link.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlpkg.collector.devices import set_tags
from amlpkg.packager import rollout as ro
from amlpkg.packager.rollout import cohorts, records
from amlpkg.store.workspace import Workspace
from tests.rollout.fleet import good_model
from tests.rollout.world import Start, World, fleet_world, wait_for

pytestmark = pytest.mark.slow

AMLPKG = str(Path(sys.executable).parent / "amlpkg")
REGIONS = {f"dev-{i:02d}": "eu-west" if i < 4 else "us-east" for i in range(6)}
GATE = "error_rate<0.05,drift<0.2"
SOAK = "8s"


def _tag(ws: Workspace, device_id: str) -> None:
    set_tags(ws, device_id, {"region": REGIONS[device_id], "site": {"line": 3}})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # v2 answers as v1 does (to the bin); v3's outputs are shifted, as fast and as sound
    models = [good_model(1.0), good_model(1.0 + 1e-6), good_model(5.0)]
    start = Start(on_added=_tag, rps_per_device=4.0, timeout_s=120)
    with fleet_world(tmp_path_factory.mktemp("drift"), models, list(REGIONS), start) as world:
        yield world


def _create(world: World, version: int, fleet: str, stages: str) -> records.Rollout:
    return ro.create(
        world.ws, f"m:{version}", fleet_condition=fleet, stages=stages, gate=GATE, soak=SOAK,
        quorum=1.0, max_wait="40s", desired_dir=world.desired_dir,
    )  # fmt: skip


def _cli(world: World, *args: str) -> str:
    done = subprocess.run(
        [AMLPKG, *args, "--home", str(world.home)],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "COLUMNS": "200"},  # one line per edge, as a wide terminal shows
    )  # fmt: skip
    print(done.stdout)  # the README's examples (pytest -s)
    return done.stdout


def _versions(world: World) -> dict[str, str | None]:
    return {d: a.reported_version() for d, a in world.fleet.agents.items()}


def test_a_tagged_fleet_takes_a_version_with_the_same_outputs(world: World) -> None:
    eu = sorted(d for d, r in REGIONS.items() if r.startswith("eu"))
    assert ro.fleet(world.ws, "tags.region=eu-*,tags.site.line=3") == eu
    rollout = _create(world, 2, "tags.region=eu-*,tags.site.line=3", "50%,100%")
    final = ro.drive(world.ws, rollout.id, ro.applier_for(rollout), poll_s=0.5, max_s=120)
    assert final.state == "succeeded", final.reason
    first = final.result[0]
    assert first["cohort"]["drift"] is not None and first["cohort"]["drift"] < 0.2
    # the cohorts are the deterministic ones, drawn from the tagged devices only
    staged = records.devices(world.ws, rollout.id)
    assert [d.device_id for d in staged if d.stage == 0] == sorted(
        cohorts.cohort(rollout.id, eu, 50)
    )
    assert sorted(d.device_id for d in staged) == eu
    wait_for(lambda: all(_versions(world)[d] == "2" for d in eu), 60, "the eu devices on m:2")
    for device_id in REGIONS.keys() - set(eu):
        assert "m:2" not in world.desired.served.get(device_id, set()), device_id
        assert _versions(world)[device_id] == "1"
    later = next(d.device_id for d in staged if d.stage == 1)
    text = _cli(world, "lineage", f"device:{later}")
    assert f"runs m:2 because of rollout {rollout.id} stage 2 (100%)" in text
    assert "region=eu-west" in text


def test_shifted_outputs_are_stopped_by_drift_at_the_first_stage(world: World) -> None:
    before = _versions(world)
    rollout = _create(world, 3, "*", "30%,100%")
    final = ro.drive(world.ws, rollout.id, ro.applier_for(rollout), poll_s=0.5, max_s=120)
    assert final.state == "failed" and len(final.result) == 1
    verdict = final.result[0]
    cohort = sorted(d.device_id for d in records.devices(world.ws, rollout.id))
    assert len(cohort) == 2 and verdict["cohort"]["error_rate"] == 0.0
    assert [f["metric"] for f in verdict["failures"]] == ["drift"]
    assert verdict["failures"][0]["observed"] > 0.5
    assert set(verdict["failures"][0]["devices"]) <= set(cohort)
    assert "drift<0.2 failed" in (final.reason or "")
    wait_for(lambda: _versions(world) == before, 60, "the cohort back on what it ran")
    for device_id in REGIONS.keys() - set(cohort):
        assert "m:3" not in world.desired.served.get(device_id, set()), device_id
    status = _cli(world, "rollout", "status", rollout.id)
    assert "FAILED" in status and "; drift " in status and "drift<0.2 failed" in status
    text = _cli(world, "lineage", f"device:{cohort[0]}")
    back = f"m:{before[cohort[0]]}"
    assert f"back on {back} because rollout {rollout.id} stage 1 (30%) with m:3" in text
    assert "rolled_back" in text
