"""How many intra-op threads a session gets: the configured count, or the CPUs split."""

from __future__ import annotations

import pytest

from amlpkg.runtime import session
from amlpkg.runtime.model_config import parse_model_config


@pytest.mark.parametrize(
    ("cpus", "config", "expected"),
    [
        (8, {}, 8),
        (8, {"instance_count": 2}, 4),
        (8, {"instance_count": 3}, 2),
        (2, {"instance_count": 4}, 1),  # never fewer than one
        (8, {"intra_op_threads": 3, "instance_count": 2}, 3),  # an explicit count wins
    ],
)
def test_default_threads_split_the_processes_cpus_between_instances(
    monkeypatch: pytest.MonkeyPatch, cpus: int, config: dict[str, int], expected: int
) -> None:
    monkeypatch.setattr(session, "available_cpus", lambda: cpus)
    assert session.intra_op_threads(parse_model_config(config, "config.yaml")) == expected


def test_available_cpus_follows_the_affinity_mask() -> None:
    import os

    assert session.available_cpus() == len(os.sched_getaffinity(0))
