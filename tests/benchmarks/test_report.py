"""The targets are checked per protocol with honest verdicts, and RESULTS.md says so."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.inprocess import InProcessResult
from benchmarks.loadgen import LoadResult
from benchmarks.report import Row, Target, check_targets, markdown


def _row(
    server: str,
    category: str,
    model: str,
    conc: int,
    rps: float,
    p50: float,
    protocol: str = "http",
) -> Row:
    result = LoadResult(
        requests=int(rps * 10),
        errors=0,
        seconds=10.0,
        p50_ms=p50,
        p99_ms=p50 * 2,
        client_cpu=0.3,
        tool="wrk",
    )
    return Row(server, category, protocol, "v2-json", model, conc, result, client="wrk")


INPROC = [
    InProcessResult("cnn", 8, False, 4000.0, 2.0, 100),
    InProcessResult("cnn", 1, False, 3000.0, 0.3, 100),
]
ROWS = [
    _row("amlpkg", "ours", "mlp", 16, 3000, 5.0),
    _row("amlpkg", "ours", "mlp", 1, 900, 0.5),
    _row("amlpkg", "ours", "cnn", 16, 2000, 8.0),
    _row("amlpkg", "ours", "cnn", 1, 300, 3.0),
    _row("mlserver", "python", "mlp", 16, 1500, 10.0),
    _row("litserve", "python", "mlp", 16, 2500, 10.0),
    _row("mlserver", "python", "mlp", 1, 800, 0.7),
    _row("pytriton", "triton", "mlp", 16, 2000, 7.0),
    _row("pytriton", "triton", "cnn", 1, 300, 2.0),
]


def _by_goal(protocol: str) -> dict[str, Target]:
    return {t.goal: t for t in check_targets(ROWS, INPROC) if t.protocol == protocol}


def test_targets_use_the_best_peer_and_report_ratios() -> None:
    goals = _by_goal("http")
    peer = goals["MLP c16 >= 1.5x best Python peer"]
    assert peer.ratio == 3000 / 2500  # litserve, the best Python peer, not mlserver
    assert peer.met is False
    triton = goals["MLP c16 >= PyTriton"]
    assert triton.ratio == 1.5 and triton.met is True
    assert goals["MLP c1 lowest p50 of all"].met is True
    cnn_p50 = goals["CNN c1 lowest p50 of all"]
    assert cnn_p50.ratio == 2.0 / 3.0 and cnn_p50.met is False
    limit = goals["CNN c16 >= 0.75x in-process ORT"]
    assert limit.ratio == 2000 / 4000 and limit.met is False
    assert "batch 8" in limit.detail and "client CPU 0.30" in limit.detail


def test_missing_measurements_are_not_counted_as_met() -> None:
    goals = _by_goal("grpc")
    assert all(t.met is None and t.ratio is None for t in goals.values())


def test_failed_rows_do_not_count() -> None:
    failed = Row("amlpkg", "ours", "http", "v2-json", "mlp", 16, None, "server did not start")
    targets = check_targets([failed, *ROWS[4:]], INPROC)
    first = next(t for t in targets if t.goal.startswith("MLP c16 >= 1.5x"))
    assert first.met is None


def test_perf_analyzer_rows_are_shown_apart_and_do_not_count() -> None:
    fast = replace(_row("amlpkg", "ours", "mlp", 16, 9000, 1.0, "grpc"), client="perf_analyzer")
    targets = check_targets([*ROWS, fast], INPROC)
    assert all(t.met is None for t in targets if t.protocol == "grpc")
    text = markdown([*ROWS, fast], INPROC, targets, {}, [])
    assert "## perf_analyzer" in text
    assert "| amlpkg | grpc | perf_analyzer |" in text


def test_markdown_has_tables_verdicts_and_notes() -> None:
    failed = Row("mlserver", "python", "grpc", "grpc-raw", "cnn", 1, None, "answer check failed")
    text = markdown(
        [*ROWS, failed],
        INPROC,
        check_targets(ROWS, INPROC),
        {"Machine": {"CPU": "test cpu"}},
        ["a note"],
    )
    assert "- **CPU**: test cpu" in text
    assert "**NOT MET**" in text and "**MET**" in text and "**NOT MEASURED**" in text
    assert "| amlpkg | http | wrk | v2-json | mlp | 16 | 3,000 |" in text
    assert "failed: answer check failed" in text
    assert "- a note" in text
