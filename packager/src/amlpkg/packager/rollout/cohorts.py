"""Deterministic cohorts: which devices each stage of a rollout puts the new model on.

Devices are ordered by the SHA-256 of ``rollout id + device id``: the same rollout
always picks the same devices (a restarted driver picks what it picked before), a
different rollout spreads the risk over other devices, and a device joining the
fleet does not reshuffle the ones already chosen.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable


def rank(rollout_id: str, device_id: str) -> str:
    """The sort key of a device within one rollout."""
    return hashlib.sha256(f"{rollout_id}\0{device_id}".encode()).hexdigest()


def ordered(rollout_id: str, device_ids: Iterable[str]) -> list[str]:
    """The fleet in the order stages take devices."""
    return sorted(set(device_ids), key=lambda d: (rank(rollout_id, d), d))


def stage_size(percent: float, fleet_size: int) -> int:
    """Devices on the new model after a stage of ``percent``: rounded up, at least one."""
    if fleet_size == 0:
        return 0
    return min(fleet_size, max(1, math.ceil(percent / 100.0 * fleet_size - 1e-9)))


def cohort(rollout_id: str, device_ids: Iterable[str], percent: float) -> list[str]:
    """The devices on the new model once the stage of ``percent`` is applied (cumulative)."""
    order = ordered(rollout_id, device_ids)
    return order[: stage_size(percent, len(order))]
