"""The world of the fleet rollout tests: versions m:1.., a collector, desired state, agents.

:func:`fleet_world` registers the models, starts a real collector and the desired-state
server, starts one real edge agent per device on ``m:1`` and holds a load on them
until every device reports ``m:1``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.collector.devices import list_devices
from amlpkg.collector.server import running_collector
from amlpkg.packager.rollout.desired_http import DesiredServer, serving_desired
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import register
from tests.rollout.fleet import Fleet, Load


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@dataclass
class World:
    ws: Workspace
    fleet: Fleet
    desired: DesiredServer
    desired_dir: Path
    home: Path
    load: Load


@dataclass(frozen=True)
class Start:
    """How the fleet starts; defaults: every agent at once, 2 requests/s each."""

    extra: dict[str, Any] | None = None
    """More keys of each device's first desired-state document."""
    on_added: Callable[[Workspace, str], None] | None = None
    """Called with each device id once its agent and document exist (e.g. to tag it)."""
    wave: int = 0
    """Start this many agents at a time, a second apart (0: all at once)."""
    rps_per_device: float = 2.0
    timeout_s: float = 120.0
    """How long every device may take to report m:1."""


def _register(ws: Workspace, tmp: Path, models: Sequence[bytes]) -> dict[str, Any]:
    """Register ``models`` as m:1, m:2, ...; the desired-state document of m:1."""
    for version, data in enumerate(models, start=1):
        path = tmp / f"m{version}.onnx"
        path.write_bytes(data)
        assert register("m", path, workspace=ws).version == version
    v1 = ws.conn.execute("SELECT sha256 FROM model_versions WHERE version = 1").scalar()
    return {"model": {"name": "m", "version": "1", "sha256": v1,
                      "url": (tmp / "m1.onnx").as_uri()}}  # fmt: skip


@contextmanager
def fleet_world(
    tmp: Path, models: Sequence[bytes], device_ids: Sequence[str], start: Start
) -> Iterator[World]:
    """The world of ``device_ids`` serving m:1 of ``models`` (see the module docstring)."""
    home, desired_dir = tmp / "ws", tmp / "desired"
    desired_dir.mkdir()
    with open_workspace(home) as ws:
        first_doc = _register(ws, tmp, models) | (start.extra or {})
        with (
            running_collector(ws, port=0) as collector,
            serving_desired(desired_dir) as desired,
        ):
            fleet = Fleet(tmp / "devices", desired.url, collector.url)
            for device_id in device_ids:
                fleet.add(device_id)
                (desired_dir / f"{device_id}.json").write_text(json.dumps(first_doc))
                if start.on_added is not None:
                    start.on_added(ws, device_id)
            try:
                agents = list(fleet.agents.values())
                wave = start.wave or len(agents)
                for first in range(0, len(agents), wave):
                    for agent in agents[first : first + wave]:
                        fleet.start(agent)
                    if start.wave:
                        time.sleep(1.0)
                with Load(fleet, rps_per_device=start.rps_per_device) as load:
                    wait_for(
                        # restart_exited: a port can be taken by another process meanwhile
                        lambda: (
                            fleet.restart_exited() >= 0
                            and sum(d.reported_model == "m:1" for d in list_devices(ws))
                            == len(device_ids)
                        ),
                        start.timeout_s,
                        "every device reporting m:1",
                    )
                    yield World(ws, fleet, desired, desired_dir, home, load)
            finally:
                fleet.stop_all()
