"""The control-plane scale benchmark's pieces: the bulk seed, the quantiles and the section
it writes (the benchmark itself runs from ``python -m benchmarks.control_plane_scale``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.store import queries
from amlpkg.trainer.store.series import downsampled
from benchmarks.control_plane_scale import Measure, markdown, parse
from benchmarks.control_plane_seed import Shape, seed
from benchmarks.report import put_section, section


def test_the_seed_fills_runs_params_tags_and_a_big_series(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        made = seed(ws, Shape(runs=40, experiments=4, steps=5, big_points=3000))
        assert made.runs == 41 and made.metric_points == 40 * 5 * 2 + 3000
        assert ws.conn.execute("SELECT COUNT(*) FROM metrics").scalar() == made.metric_points
        big = queries.get_run(ws, made.big_run)
        assert big.name == "big" and set(big.metrics) == {"loss"}
        series = downsampled(ws, made.big_run, "loss", 100)
        assert series.logged == 3000 and len(series.points) <= 100
        assert max(v for _s, v, _t in series.points) > 5  # the seeded spike at step 0
        found = queries.list_runs(ws, search="params.optimizer = adam", tags={"team": "vision"})
        assert found and all(r.params["optimizer"] == "adam" for r in found)
        # New experiments after a seed get fresh ids (the seed gave its own).
        from amlpkg.trainer.store import runs as store_runs

        store_runs.create_run(ws, "after-seed")


def test_quantiles_and_verdicts() -> None:
    m = Measure("SQLite", "runs page", "GET /runs", [float(v) for v in range(1, 101)])
    assert (m.quantile(0.5), m.quantile(0.95)) == (50.0, 95.0)
    assert m.cells()[-1] == "MET"
    slow = Measure("SQLite", "page", "x", [900.0, 1200.0])
    assert slow.cells()[-1] == "NOT MET"  # the verdict is on p95


def test_the_section_replaces_only_its_own_markers() -> None:
    m = Measure("PostgreSQL", "run detail", "GET /runs/RUN", [3.0, 4.0])
    body = markdown([m], {}, {"date (UTC)": "2026-11-30 12:00"}, ["page loads: no chromium"])
    before = put_section("# Results\n\nkept\n", "other", "other body")
    text = put_section(before, "control-plane-scale", body)
    assert "other body" in text and "kept" in text
    assert "| PostgreSQL | run detail |" in section(text, "control-plane-scale")
    assert "no chromium" in text


def test_bad_options_exit_with_2() -> None:
    with pytest.raises(SystemExit) as stop:
        parse(["--backends", "mysql"])
    assert stop.value.code == 2
    assert parse(["--runs", "10", "--no-browser"]).runs == 10
