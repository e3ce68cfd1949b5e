"""The A/B tool's arithmetic, options, checkout and import check (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.ab import extract, imported_from, parse, resolve_commit
from benchmarks.ab_report import Measured, ab_markdown, summarize


def test_ratio_is_of_the_medians_and_the_budget_is_5_percent() -> None:
    samples = {
        ("A", "mlp", "http", 16): [Measured(r, 1.0, "") for r in (1000.0, 990.0, 2000.0)],
        ("B", "mlp", "http", 16): [Measured(r, 1.1, "") for r in (960.0, 950.0, 100.0)],
        ("A", "mlp", "grpc", 16): [Measured(1000.0, None, "")],
        ("B", "mlp", "grpc", 16): [Measured(900.0, None, "")],
        ("A", "mlp", "http", 1): [Measured(500.0, None, "")],
        ("B", "mlp", "http", 1): [Measured(None, None, "perf_analyzer failed: x")],
    }
    points = {(p.path, p.concurrency): p for p in summarize(samples)}
    http = points[("http", 16)]
    assert http.ratio == pytest.approx(950 / 1000)  # medians: one outlier each side
    assert http.verdict == "MET" and http.current_cpu == pytest.approx(1.1)
    assert points[("grpc", 16)].verdict == "NOT MET"
    c1 = points[("http", 1)]
    assert c1.ratio is None and c1.verdict == "-" and c1.errors == ["perf_analyzer failed: x"]


def test_markdown_section_names_both_sides_and_verdicts() -> None:
    samples = {
        ("A", "mlp", "http", 16): [Measured(1000.0, 1.0, "")],
        ("B", "mlp", "http", 16): [Measured(None, None, "boom")],
    }
    text = ab_markdown(summarize(samples), {"A": "39f7f68", "B": "current"})
    assert text.startswith("## Hardening cost (A/B, issue 9)")
    assert "- **A**: 39f7f68" in text
    assert (
        "| mlp | http | 16 | 1,000 (1,000..1,000) | failed | - | 1.00 / - | **NOT MEASURED** |"
        in text
    )
    assert "- failed run: boom" in text


def test_options_are_checked() -> None:
    args = parse(["--paths", "http,grpc+shm", "--concurrency", "1,16", "--models", "mlp,cnn"])
    assert args.paths == ["http", "grpc+shm"] and args.concurrency == [1, 16]
    assert args.rounds == 3 and args.duration == 5.0 and args.base == "39f7f68"
    for bad in (
        ["--rounds", "0"],
        ["--duration", "600"],
        ["--paths", "udp"],
        ["--concurrency", "0"],
        ["--models", "resnet"],
    ):
        with pytest.raises(SystemExit):
            parse(bad)


def test_base_commit_tree_loads_its_own_runtime(tmp_path: Path) -> None:
    try:
        commit = resolve_commit("39f7f68")
    except ValueError:
        pytest.skip("a shallow clone without the base commit")
    assert len(commit) == 40
    with pytest.raises(ValueError, match="unknown commit"):
        resolve_commit("0" * 40)
    tree = extract(commit, tmp_path)
    assert (tree / "amlpkg" / "runtime").is_symlink()  # the old layout's link survives
    assert extract(commit, tmp_path) == tree  # made once
    assert imported_from(str(tree)).startswith(str(tree))
    assert not imported_from(None).startswith(str(tree))
