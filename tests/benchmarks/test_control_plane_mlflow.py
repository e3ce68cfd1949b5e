"""benchmarks.control_plane_mlflow: its arithmetic and section, and the amlpkg half for real.

The MLflow half needs MLflow in its own venv (pip); CI does not install it, so the live
test runs ``--quick --only amlpkg``: our real server on a fresh PostgreSQL database,
real client processes, the points counted in the database.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import control_plane_measures as cpm
from benchmarks import control_plane_report as cpr
from benchmarks.control_plane_mlflow import SECTION, main, parse, plan_from, rows_from
from benchmarks.report import put_section, section
from tests.services import postgres_url, require


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert cpr.percentile(values, 50) == pytest.approx(50.5)
    assert cpr.percentile(values, 99) == pytest.approx(99.01)
    assert cpr.percentile([7.0], 99) == 7.0
    assert math.isnan(cpr.percentile([], 50))


def test_wall_time_runs_from_the_first_start_to_the_last_end() -> None:
    results = [{"start": 10.0, "end": 12.0}, {"start": 10.5, "end": 14.0}]
    assert cpr.wall_seconds(results) == 4.0
    result = cpr.LogResult(sent=1000, stored=990, seconds=2.0, clients=2)
    assert result.per_second == 495.0 and result.lost == 10


def test_verdicts_follow_the_goal_and_need_both_sides() -> None:
    faster = cpr.Row("points/s", "points/s", 1200.0, 1000.0, ">=1")
    slower = cpr.Row("points/s", "points/s", 900.0, 1000.0, ">=1")
    lower_p99 = cpr.Row("search p99", "ms", 8.0, 10.0, "<1")
    equal_p99 = cpr.Row("search p99", "ms", 10.0, 10.0, "<1")
    one_side = cpr.Row("search p99", "ms", 8.0, None, "<1")
    assert [faster.verdict, slower.verdict] == ["MET", "NOT MET"]
    assert [lower_p99.verdict, equal_p99.verdict] == ["MET", "NOT MET"]
    assert one_side.verdict == "NOT MEASURED" and one_side.ratio is None
    assert cpr.Row("p50", "ms", 1.0, 2.0).verdict == ""
    assert cpr.cells(faster)[4] == "1.20x"


def test_rows_keep_a_missing_side_visible() -> None:
    logs = {("amlpkg", "script"): (cpr.LogResult(100, 100, 0.5, 2), 3.0)}
    rows = rows_from(logs, {"amlpkg": [1.0, 2.0, 3.0]}, {}, cpm.Plan())
    by_name = {row.measure: row for row in rows}
    per_point = next(r for r in rows if r.measure.startswith("points/s, per-point"))
    assert per_point.amlpkg == 200.0 and per_point.verdict == "NOT MEASURED"
    assert by_name["run search p50"].amlpkg == 2.0
    assert by_name["model-version registration p99"].amlpkg is None


def test_section_goes_between_markers_and_keeps_the_rest(tmp_path: Path) -> None:
    rows = [cpr.Row("search p99", "ms", 8.0, 10.0, "<1", "10,000 runs")]
    meta = {"Versions": {"MLflow": "3.17.2"}}
    body = cpr.section(rows, meta, ["a note"], "Team server beside MLflow")
    text = put_section("# Results\n\nkept\n", SECTION, body)
    assert "kept" in text and "**MET**" in text and "| search p99 (10,000 runs) |" in text
    assert "**Versions**: MLflow: 3.17.2" in text and "- a note" in text
    again = put_section(text, SECTION, body.replace("a note", "new note"))
    assert again.count(f"section:{SECTION} begin") == 1 and "new note" in section(again, SECTION)


def test_search_asks_for_sorting_and_filtering_only_where_the_route_has_them() -> None:
    bare = {"paths": {"/api/v1/runs": {"get": {"parameters": [{"name": "limit"}]}}}}
    assert cpm.our_search_params(bare) == {"limit": cpm.SEARCH_PAGE}
    names = [{"name": n} for n in ("limit", "q", "sort", "order")]
    full = {"paths": {"/api/v1/runs": {"get": {"parameters": names}}}}
    asked = cpm.our_search_params(full)
    assert asked == {"limit": 100, "q": cpm.SEARCH_FILTER, "sort": "metrics.acc", "order": "desc"}


def test_options_pick_the_plan_and_refuse_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_from(parse(["--quick", "--clients", "3"]))
    assert plan.clients == 3 and plan.runs < cpm.Plan().runs
    assert plan_from(parse([])).clients == 16 and plan_from(parse([])).runs == 10_000
    with pytest.raises(SystemExit) as exited:
        parse(["--clients", "0"])
    assert exited.value.code == 2 and "--clients must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_amlpkg_half_stores_every_point_and_writes_its_section(tmp_path: Path) -> None:
    require(postgres_url() is not None, "PostgreSQL (.ci/services.sh) is not running")
    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n\nkept\n")
    argv = ["--quick", "--only", "amlpkg", "--clients", "2", "--runs", "30"]
    code = main([*argv, "--output", str(out), "--workdir", str(tmp_path / "work")])
    assert code == 0
    text = section(out.read_text(), SECTION)
    assert text and "kept" in out.read_text()
    per_point = next(line for line in text.splitlines() if "per-point client: amlpkg" in line)
    cells = [c.strip() for c in per_point.split("|")]
    assert cells[3] not in ("-", "0") and cells[4] == "-"  # ours measured, MLflow not run
    assert "Points lost (sent but not in the database): none." in text
    search = next(line for line in text.splitlines() if line.startswith("| run search p99"))
    assert search.split("|")[3].strip() != "-"


def test_a_full_run_can_include_it() -> None:
    from benchmarks.run import parse as run_parse

    assert run_parse(["--control-plane"]).control_plane is True
    assert run_parse([]).control_plane is False


def test_turns_alternate_the_sides_and_flip_the_order() -> None:
    seen: list[str] = []
    calls = {"mlflow": lambda: seen.append("m"), "amlpkg": lambda: seen.append("a")}
    samples = cpm.timed_turns(calls, count=3, warmup=1)
    assert seen == ["m", "a", *["m", "a", "a", "m", "m", "a"]]  # warm-ups, then 3 rounds
    assert [len(v) for v in samples.values()] == [3, 3] and min(samples["amlpkg"]) >= 0
