"""Issue 11's targets from perf_analyzer rows, with honest verdicts, and RESULTS.md says so."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.inprocess import InProcessResult
from benchmarks.loadgen import LoadResult
from benchmarks.report import markdown, put_section, section
from benchmarks.targets import Row, Target, check_targets


def _row(
    server: str,
    model: str,
    conc: int,
    rps: float,
    p50: float,
    path: str = "http",
    server_cpu: float | None = 1.2,
    client: str = "perf_analyzer",
) -> Row:
    result = LoadResult(
        requests=int(rps * 10),
        errors=0,
        seconds=10.0,
        p50_ms=p50,
        p99_ms=p50 * 2,
        client_cpu=0.3,
        tool=client,
        server_cpu=server_cpu,
    )
    category = "ours" if server == "amlpkg" else "triton"
    return Row(server, category, path, "v2-binary", model, conc, result, client=client)


INPROC = [
    InProcessResult("cnn", 32, True, 20000.0, 2.0, 100, threads=2),
    InProcessResult("cnn", 1, False, 3000.0, 0.3, 100, threads=2),
]
ROWS = [
    _row("amlpkg", "cnn", 16, 16000, 8.0, "http", server_cpu=1.7),
    _row("amlpkg", "cnn", 16, 11000, 8.0, "grpc"),
    _row("amlpkg", "cnn", 16, 14000, 8.0, "http+shm"),
    _row("amlpkg", "cnn", 16, 15500, 8.0, "grpc+shm"),
    _row("amlpkg", "mlp", 16, 7000, 2.0, "http"),
    _row("amlpkg", "mlp", 16, 5000, 3.0, "grpc"),
    _row("amlpkg", "mlp", 1, 2000, 0.30, "http"),
    _row("amlpkg", "mlp", 1, 1500, 0.50, "grpc"),
    _row("pytriton", "mlp", 1, 700, 1.30, "http"),
    _row("pytriton", "mlp", 1, 2500, 0.40, "grpc"),
]


def _goals() -> dict[tuple[str, str], Target]:
    return {(t.goal, t.protocol): t for t in check_targets(ROWS, INPROC)}


def test_cnn_targets_against_the_best_in_process_point() -> None:
    goals = _goals()
    http = goals[("CNN c16 >= 0.75x in-process ORT", "http")]
    assert http.ratio == 16000 / 20000 and http.met is True
    assert "batch 32, spin on" in http.detail
    grpc = goals[("CNN c16 >= 0.6x in-process ORT", "grpc")]
    assert grpc.ratio == 11000 / 20000 and grpc.met is False
    # Shared memory: the better control path counts, the other is shown too.
    shm = goals[("CNN c16 >= 0.75x in-process ORT", "shm")]
    assert shm.ratio == 15500 / 20000 and shm.met is True
    assert shm.detail.startswith("grpc+shm") and "http+shm: 0.70x" in shm.detail


def test_mlp_grpc_against_http_and_the_server_cpu_target() -> None:
    goals = _goals()
    grpc = goals[("MLP c16 gRPC >= 0.8x HTTP", "grpc")]
    assert grpc.ratio == 5000 / 7000 and grpc.met is False
    cores = goals[("server >= 1.6 cores at CNN c16", "http")]
    assert cores.ratio == 1.7 and cores.met is True
    assert "perf_analyzer 0.30 cores" in cores.detail


def test_lowest_p50_is_per_path_against_every_other_server() -> None:
    goals = _goals()
    assert goals[("MLP c1 lowest p50 of all", "http")].met is True
    grpc = goals[("MLP c1 lowest p50 of all", "grpc")]
    assert grpc.ratio == 0.40 / 0.50 and grpc.met is False
    assert goals[("CNN c1 lowest p50 of all", "http")].met is None


def test_missing_failed_or_socket_client_rows_are_not_measured() -> None:
    failed = Row("amlpkg", "ours", "http", "v2-binary", "cnn", 16, None, "did not start")
    wrk = _row("amlpkg", "mlp", 16, 9000, 1.0, "grpc", client="wrk")
    targets = check_targets([failed, wrk], INPROC)
    assert all(t.met is None and t.ratio is None for t in targets)
    no_cpu = [_row("amlpkg", "cnn", 16, 16000, 8.0, server_cpu=None)]
    cores = next(t for t in check_targets(no_cpu, INPROC) if "cores" in t.goal)
    assert cores.met is None and cores.detail == "not measured"


def test_markdown_has_targets_rows_cpu_and_the_kept_section() -> None:
    failed = Row("pytriton", "triton", "grpc+shm", "system-shm", "cnn", 1, None, "pa failed")
    wrk = replace(_row("amlpkg", "mlp", 16, 9000, 1.0, client="wrk"), wire="v2-json")
    rows = [*ROWS, failed, wrk]
    text = markdown(
        rows,
        INPROC,
        check_targets(rows, INPROC),
        {"Machine": {"CPU": "test cpu"}},
        ["a note"],
        extra="## A/B kept",
    )
    assert "- **CPU**: test cpu" in text
    assert "**NOT MET**" in text and "**MET**" in text and "**NOT MEASURED**" in text
    line = "| amlpkg | http | perf_analyzer | v2-binary | cnn | 16 | 16,000 | 8.00 | 16.00 | 80.0% "
    assert line + "| 1.70 | 0.30 | 0 |" in text
    assert "## Socket clients" in text and "| amlpkg | http | wrk | v2-json |" in text
    assert "failed: pa failed" in text
    assert "| cnn | 32 | on | 2 | 20,000 |" in text
    assert "- a note" in text
    assert text.rstrip().endswith("## A/B kept")


def test_sections_are_replaced_in_place_or_appended() -> None:
    text = put_section("# Title\n", "ab", "first")
    assert text.startswith("# Title\n\n<!-- section:ab begin -->\nfirst\n")
    again = put_section(text + "tail\n", "ab", "second")
    assert "first" not in again and "second" in again and again.endswith("tail\n")
    assert section(again, "ab").startswith("<!-- section:ab begin -->")
    assert section("no markers", "ab") == ""


def test_a_full_run_keeps_every_marked_section_other_tools_wrote() -> None:
    from benchmarks.report import put_section, sections

    text = put_section("# Results\n", "ab", "## A/B\nratio")
    text = put_section(text, "profile", "## Profiles\nthreads")
    text += "\nunmarked prose\n"
    kept = sections(text)
    assert "## A/B\nratio" in kept and "## Profiles\nthreads" in kept
    assert "unmarked prose" not in kept and "# Results" not in kept
    assert kept.index("<!-- section:ab begin -->") < kept.index("<!-- section:profile begin -->")


def test_another_configuration_of_ours_is_checked_on_its_own_rows() -> None:
    # The workers configuration is compared with the peers, never with the default one.
    faster = [
        _row("amlpkg-workers", "mlp", 16, 9000, 1.0, "http"),
        _row("amlpkg-workers", "mlp", 16, 8100, 1.0, "grpc"),
        _row("amlpkg-workers", "mlp", 1, 800, 0.45, "grpc"),
    ]
    rows = [*ROWS, *(replace(r, category="ours") for r in faster)]
    goals = {(t.goal, t.protocol): t for t in check_targets(rows, INPROC, "amlpkg-workers")}
    grpc = goals[("amlpkg-workers: MLP c16 gRPC >= 0.8x HTTP", "grpc")]
    assert grpc.ratio == 8100 / 9000 and grpc.met is True
    p50 = goals[("amlpkg-workers: MLP c1 lowest p50 of all", "grpc")]
    assert p50.ratio == 0.40 / 0.45 and p50.met is False  # pytriton, not the default config
    assert goals[("amlpkg-workers: CNN c16 >= 0.6x in-process ORT", "grpc")].met is None


def test_the_ceiling_any_server_could_reach_comes_from_ort_and_client_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ORT: 0.32 CPU-s over 100 calls of 32 = 100 us per sample; perf_analyzer: 0.3 cores
    # at 16,000 req/s = 18.75 us per request; on 2 cores a server costing nothing could
    # answer at most 2 / 118.75 us = 16,842 req/s = 0.84x of 20,000 samples/s.
    monkeypatch.setattr("benchmarks.targets.usable_cpus", lambda: 2)
    inproc = [replace(INPROC[0], cpu_s=0.32), replace(INPROC[1], cpu_s=0.2)]
    goals = {(t.goal, t.protocol): t for t in check_targets(ROWS, inproc)}
    http = goals[("CNN c16 >= 0.75x in-process ORT", "http")]
    assert http.ceiling is not None and abs(http.ceiling - 2e6 / 118.75 / 20000) < 1e-9
    assert "ORT 100 us CPU/sample + perf_analyzer 19 us/request on 2 cores" in http.detail
    cores = goals[("server >= 1.6 cores at CNN c16", "http")]
    assert cores.ceiling is not None and abs(cores.ceiling - 1.7) < 1e-9
    # Without the in-process CPU, no ceiling is claimed.
    assert _goals()[("CNN c16 >= 0.75x in-process ORT", "http")].ceiling is None
    text = markdown(ROWS, inproc, check_targets(ROWS, inproc), {}, [])
    assert "| 0.84x |" in text


def test_grpc_target_ceiling_is_the_best_bare_grpcio_floor_and_floors_are_no_peers() -> None:
    floors = [
        replace(_row("grpcio-aio-floor", "mlp", 16, 4200, 3.0, "grpc"), category="reference"),
        replace(_row("grpcio-sync-floor", "mlp", 16, 5600, 2.0, "grpc"), category="reference"),
        # Faster at c1 than ours, but a floor is not a server: it does not count for p50.
        replace(_row("grpcio-sync-floor", "mlp", 1, 3000, 0.10, "http"), category="reference"),
    ]
    goals = {(t.goal, t.protocol): t for t in check_targets(ROWS + floors, INPROC)}
    grpc = goals[("MLP c16 gRPC >= 0.8x HTTP", "grpc")]
    assert grpc.ceiling == 5600 / 7000 and grpc.met is False
    assert "bare grpcio (grpcio-sync-floor, ORT inline) 5,600 req/s" in grpc.detail
    assert goals[("MLP c1 lowest p50 of all", "http")].met is True
