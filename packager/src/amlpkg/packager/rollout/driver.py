"""The rollout driver: one step at a time from the state in the workspace.

:func:`step` reads the rollout row, does the one thing its ``phase`` calls for and
writes the new position before returning, so a driver killed at any point is
continued by another (``amlpkg rollout resume``) from the same place:

- ``apply``: record each new cohort device with its previous desired state, *then*
  change its desired state (a crash in between re-applies, which is idempotent),
  then move to ``soak`` with the time of the change;
- ``soak``: once the soak is over and a quorum was heard from, evaluate the gate;
  passed: the next stage (or ``succeeded``), failed: roll the rollout's devices back
  and stop (``failed``, saying which metric failed on which devices).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from amlpkg.collector import devices as device_records
from amlpkg.collector.windows import device_windows
from amlpkg.errors import FailedPreconditionError
from amlpkg.packager.rollout import cohorts, records
from amlpkg.packager.rollout.appliers import Applier
from amlpkg.packager.rollout.gate import CohortDevice, evaluate
from amlpkg.packager.rollout.records import TERMINAL, Rollout
from amlpkg.packager.rollout.spec import FleetCondition, parse_gate
from amlpkg.store.workspace import Workspace

log = logging.getLogger(__name__)


def fleet(ws: Workspace, condition: str) -> list[str]:
    """Ids of the device records the fleet condition selects."""
    parsed = FleetCondition.parse(condition)
    found = []
    for device in device_records.list_devices(ws):
        record = {
            "id": device.id,
            "module": device.module,
            "deployment": device.deployment_id or device.desired_deployment_id,
            "model": device.reported_model,
            "desired": device.desired_model,
            **{f"tags.{k}": v for k, v in device.tags.items()},
        }
        if parsed.matches(record):
            found.append(device.id)
    return found


def _apply(ws: Workspace, rollout: Rollout, applier: Applier) -> Rollout:
    staged = {d.device_id for d in records.devices(ws, rollout.id)}
    members = fleet(ws, rollout.fleet)
    wanted = cohorts.cohort(rollout.id, members, rollout.stages[rollout.stage])
    new = [d for d in wanted if d not in staged]
    sha = rollout.options["desired"].get("sha256")
    for device_id in new:
        records.add_device(ws, rollout.id, device_id, rollout.stage, applier.previous(device_id))
    # Devices recorded by a driver that died before writing their desired state are
    # in ``staged`` but not yet changed: applying the stage's whole cohort again is safe.
    stage_devices = [
        d.device_id for d in records.devices(ws, rollout.id) if d.stage == rollout.stage
    ]
    applier.apply_stage(rollout, rollout.stage, stage_devices)
    for device_id in stage_devices:
        device_records.set_desired(ws, device_id, rollout.model, sha)
    log.info("rollout %s stage %d: %d devices", rollout.id, rollout.stage + 1, len(new))
    return records.update(ws, rollout.id, phase="soak", applied_at=time.time())


def _soak(ws: Workspace, rollout: Rollout, applier: Applier, now: float) -> Rollout:
    assert rollout.applied_at is not None
    staged = [d for d in records.devices(ws, rollout.id) if d.status == "applied"]
    members = set(fleet(ws, rollout.fleet))
    since = min([rollout.applied_at, *(d.applied_at for d in staged)])
    verdict = evaluate(
        checks=parse_gate(rollout.gate),
        cohort=[CohortDevice(d.device_id, d.applied_at) for d in staged],
        control_ids=members - {d.device_id for d in staged},
        windows=device_windows(ws, since),
        new_model=rollout.model,
        stage_applied_at=rollout.applied_at,
        soak_s=rollout.soak_s,
        quorum=rollout.quorum,
        max_wait_s=rollout.max_wait_s,
        baseline=rollout.baseline,
        now=now,
    )
    if not verdict["decided"]:
        return rollout
    verdict["stage"] = rollout.stage + 1
    verdict["percent"] = rollout.stages[rollout.stage]
    verdict["at"] = now
    result = [*rollout.result, verdict]
    if not verdict["passed"]:
        _roll_back(ws, rollout, applier)
        return records.update(
            ws,
            rollout.id,
            state="failed",
            phase="done",
            result=result,
            reason=failure_text(verdict),
        )
    baseline = verdict["control"] if verdict["control"].get("requests") else rollout.baseline
    if rollout.stage + 1 >= len(rollout.stages):
        return records.update(
            ws, rollout.id, state="succeeded", phase="done", result=result, baseline=baseline
        )
    return records.update(
        ws, rollout.id, stage=rollout.stage + 1, phase="apply", result=result, baseline=baseline
    )


def _roll_back(ws: Workspace, rollout: Rollout, applier: Applier) -> None:
    staged = [d for d in records.devices(ws, rollout.id) if d.status == "applied"]
    applier.roll_back(rollout, staged)
    for device in staged:
        old = records.previous_model(device.previous)
        if old is not None:
            sha = device.previous["model"].get("sha256")
            device_records.set_desired(ws, device.device_id, old, sha)
        records.mark_device(ws, rollout.id, device.device_id, "rolled_back")


def failure_text(verdict: dict[str, Any]) -> str:
    """One line per failed check: the metric, observed against bound, and the devices."""
    lines = []
    for failure in verdict["failures"]:
        observed, bound = failure.get("observed"), failure.get("bound")
        numbers = f"{_num(observed)} vs bound {_num(bound)}"
        why = f" ({failure['why']})" if failure.get("why") else ""
        devices = ", ".join(failure.get("devices") or []) or "-"
        lines.append(
            f"stage {verdict.get('stage')}: {failure.get('check', failure['metric'])} failed:"
            f" {numbers}{why} on {devices}"
        )
    return "; ".join(lines)


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    return (
        f"{float(value):.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)
    )


def step(ws: Workspace, rollout_id: str, applier: Applier, now: float | None = None) -> Rollout:
    """Do what the rollout's position calls for, once (see the module docstring)."""
    rollout = records.get(ws, rollout_id)
    if rollout.state != "running":
        return rollout
    if rollout.phase == "apply":
        return _apply(ws, rollout, applier)
    if rollout.phase == "soak":
        return _soak(ws, rollout, applier, time.time() if now is None else now)
    return rollout


def abort(ws: Workspace, rollout_id: str, applier: Applier) -> Rollout:
    """Stop a rollout that is not finished and put its devices' desired state back."""
    rollout = records.get(ws, rollout_id)
    if rollout.state in TERMINAL:
        raise FailedPreconditionError(f"rollout {rollout_id} is already {rollout.state}")
    records.update(ws, rollout_id, state="aborted", phase="done", reason="aborted by hand")
    _roll_back(ws, rollout, applier)
    return records.get(ws, rollout_id)


def drive(
    ws: Workspace,
    rollout_id: str,
    applier: Applier,
    *,
    poll_s: float = 2.0,
    max_s: float | None = None,
    on_change: Callable[[Rollout], None] | None = None,
) -> Rollout:
    """Step until the rollout ends, is paused, or ``max_s`` passes; returns the last state."""
    deadline = None if max_s is None else time.monotonic() + max_s
    last: tuple[str, int, str] | None = None
    while True:
        rollout = step(ws, rollout_id, applier)
        position = (rollout.state, rollout.stage, rollout.phase)
        if position != last and on_change is not None:
            on_change(rollout)
        last = position
        if rollout.state != "running":
            return rollout
        if deadline is not None and time.monotonic() >= deadline:
            return rollout
        if rollout.phase == "soak":
            time.sleep(poll_s)
