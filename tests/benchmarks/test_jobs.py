"""Which rows a run makes, and perf_analyzer's command line and report parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.jobs import Settings, jobs_for
from benchmarks.models import build_cnn
from benchmarks.pa_load import command, failure, parse_report, split_path
from benchmarks.servers import server_defs

DEFS = {d.name: d for d in server_defs()}
PATHS = ("http", "grpc", "http+shm", "grpc+shm")


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = {
        "paths": PATHS,
        "levels": (1, 16),
        "duration_s": 1.0,
        "warmup_s": 0.0,
        "perf_analyzer": True,
    }
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


def test_perf_analyzer_rows_cover_every_path_and_level() -> None:
    jobs = jobs_for(DEFS["amlpkg"], build_cnn(), _settings())
    assert [(j.path, j.level) for j in jobs] == [(p, c) for p in PATHS for c in (1, 16)]
    assert {j.wire for j in jobs if j.path.endswith("+shm")} == {"system-shm"}
    assert all(j.client == "perf_analyzer" for j in jobs)


def test_socket_clients_are_opt_in_and_http_only_peers_get_no_grpc() -> None:
    both = _settings(socket_clients=("wrk", "grpc.aio"))
    jobs = jobs_for(DEFS["pytriton"], build_cnn(), both)
    assert {(j.client, j.path, j.wire) for j in jobs if j.client != "perf_analyzer"} == {
        ("wrk", "http", "v2-binary"),
        ("grpc.aio", "grpc", "grpc-raw"),
    }
    litserve = jobs_for(DEFS["litserve"], build_cnn(), both)
    assert {(j.client, j.path) for j in litserve} == {("wrk", "http")}  # no V2: no pa rows
    assert jobs_for(DEFS["amlpkg"], build_cnn(), _settings(perf_analyzer=False)) == []


def test_command_lines_per_path(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    http = command("pa", "127.0.0.1:1", "http", "mlp", 16, 9.0, report)
    assert http[:9] == ["pa", "-m", "mlp", "-u", "127.0.0.1:1", "-i", "http", "-b", "1"]
    assert "--shared-memory" not in http
    assert http[http.index("--measurement-interval") + 1] == "3000"  # three windows
    shm = command("pa", "127.0.0.1:2", "grpc+shm", "cnn", 1, 0.3, report)
    assert shm[shm.index("-i") + 1] == "grpc"
    assert shm[shm.index("--shared-memory") + 1] == "system"
    assert "--output-shared-memory-size" in shm
    assert shm[shm.index("--measurement-interval") + 1] == "500"  # its floor
    assert split_path("http+shm") == ("http", True)
    with pytest.raises(ValueError):
        split_path("udp")


def test_report_and_failure_parsing(tmp_path: Path) -> None:
    report = tmp_path / "pa.csv"
    report.write_text(
        "Concurrency,Inferences/Second,Client Send,p50 latency,p90 latency,p99 latency\n"
        "16,4054.5,10,1780,2000,51020\n"
    )
    assert parse_report(report) == (4054.5, 1.78, 51.02)
    out = (
        "Request concurrency: 1\n Pass [1] cb::Error: No valid requests\nThread [0] had error: x\n"
    )
    assert failure(out) == "Pass [1] cb::Error: No valid requests / Thread [0] had error: x"
    assert failure("a\nb\nc\n") == "b / c"
    assert failure("Request concurrency: 1", -11).startswith("killed by SIGSEGV")


def test_grpcio_floors_are_measured_over_grpc_only() -> None:
    for mode in ("aio", "sync"):
        floor = DEFS[f"grpcio-{mode}-floor"]
        assert floor.category == "reference"
        jobs = jobs_for(floor, build_cnn(), _settings())
        assert [(j.path, j.client, j.level) for j in jobs] == [
            ("grpc", "perf_analyzer", 1),
            ("grpc", "perf_analyzer", 16),
        ]
