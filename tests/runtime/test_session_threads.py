"""How many intra-op threads a session gets: the configured count, or the CPUs split;
and how many CPUs the process has (affinity, cgroup quota, the server's budget)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.runtime import cpus, session
from amlpkg.runtime.model_config import parse_model_config
from amlpkg.runtime.settings import ServerSettings, load_settings
from amlpkg.runtime.workers import worker_cpus


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


def test_available_cpus_follow_the_affinity_mask_and_the_quota() -> None:
    quota = cpus.quota_cpus()
    expected = len(os.sched_getaffinity(0))
    if quota is not None:
        expected = min(expected, math.ceil(quota))
    assert session.available_cpus() == expected


def test_a_budget_set_by_the_server_wins() -> None:
    try:
        cpus.set_budget(3)
        assert session.available_cpus() == 3
    finally:
        cpus.set_budget(None)
    assert session.available_cpus() == cpus.machine_cpus()


def _group(root: Path, relative: str, files: dict[str, str]) -> None:
    folder = root / relative
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_cgroup_v2_quota_is_the_tightest_on_the_path(tmp_path: Path) -> None:
    _group(tmp_path, "", {"cpu.max": "max 100000\n"})
    _group(tmp_path, "kubepods", {"cpu.max": "400000 100000\n"})
    _group(tmp_path, "kubepods/pod1", {"cpu.max": "150000 100000\n"})
    _group(tmp_path, "kubepods/pod1/ctr", {"cpu.max": "max 100000\n"})
    assert cpus.quota_cpus(tmp_path, "0::/kubepods/pod1/ctr\n") == 1.5


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    _group(
        tmp_path,
        "cpu,cpuacct/docker/abc",
        {"cpu.cfs_quota_us": "200000", "cpu.cfs_period_us": "100000"},
    )
    assert cpus.quota_cpus(tmp_path, "4:cpu,cpuacct:/docker/abc\n2:memory:/x\n") == 2.0
    _group(tmp_path, "cpu/free", {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"})
    assert cpus.quota_cpus(tmp_path, "3:cpu:/free\n") is None
    assert cpus.quota_cpus(tmp_path, "0::/missing\n") is None
    assert cpus.quota_cpus(tmp_path, "garbage") is None


@pytest.mark.parametrize(
    ("total", "workers", "share"), [(8, 2, 4), (2, 2, 1), (3, 2, 1), (16, 3, 5)]
)
def test_workers_split_the_cpus(total: int, workers: int, share: int, tmp_path: Path) -> None:
    settings = ServerSettings(model_repository=tmp_path, workers=workers, cpus=total)
    assert worker_cpus(settings) == share


def test_fewer_cpus_than_workers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cpus"):
        load_settings(model_repository=tmp_path, workers=4, cpus=2)
