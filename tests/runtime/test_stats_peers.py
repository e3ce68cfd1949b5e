"""Adding up the statistics of worker processes (the sockets are exercised in test_workers)."""

from __future__ import annotations

from typing import Any

from amlpkg.runtime.stats_peers import merge


def _entry(
    version: str, count: int, last: int, batches: dict[int, int], name: str = "m"
) -> dict[str, Any]:
    def duration(n: int) -> dict[str, int]:
        return {"count": n, "ns": 10 * n}

    return {
        "name": name,
        "version": version,
        "last_inference": last,
        "inference_count": count,
        "execution_count": sum(batches.values()),
        "inference_stats": {"success": duration(count), "queue": duration(count)},
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": duration(n),
                "compute_infer": duration(n),
                "compute_output": duration(n),
            }
            for size, n in sorted(batches.items())
        ],
    }


def test_counters_add_up_per_version_and_batch_size() -> None:
    own = {"model_stats": [_entry("1", 5, 100, {1: 3, 4: 1}), _entry("2", 1, 50, {1: 1})]}
    sibling = {"model_stats": [_entry("1", 7, 90, {2: 2, 4: 1}), _entry("2", 2, 80, {1: 2})]}
    merged = merge(own, [sibling])["model_stats"]
    one, two = merged
    assert (one["inference_count"], one["execution_count"], one["last_inference"]) == (12, 7, 100)
    assert one["inference_stats"]["success"] == {"count": 12, "ns": 120}
    assert [(b["batch_size"], b["compute_infer"]["count"]) for b in one["batch_stats"]] == [
        (1, 3),
        (2, 2),
        (4, 2),
    ]
    assert (two["inference_count"], two["last_inference"]) == (3, 80)


def test_a_version_only_a_sibling_reports_is_left_out() -> None:
    own = {"model_stats": [_entry("1", 5, 100, {1: 5})]}
    sibling = {"model_stats": [_entry("1", 1, 1, {1: 1}), _entry("9", 4, 1, {1: 4}, name="x")]}
    merged = merge(own, [sibling, {}])["model_stats"]
    assert [(e["name"], e["version"], e["inference_count"]) for e in merged] == [("m", "1", 6)]
