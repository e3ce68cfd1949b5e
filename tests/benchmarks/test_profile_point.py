"""The profile summary of benchmarks.profile_point: /proc thread CPU, py-spy raw, RESULTS."""

from __future__ import annotations

from pathlib import Path

from benchmarks import profile_point as pp

RAW = (
    "thread (10): MainThread;run (loop.c);epoll_pwait (libc.so.6) 60\n"
    "thread (10): MainThread;run (loop.c);sendmsg (libc.so.6) 40\n"
    "thread (11): ort-cnn-1_0;run (session.py:10);MlasConv (libonnxruntime.so) 9\n"
    "garbage line\n"
)


def _task(root: Path, pid: int, tid: int, name: str, utime: int, stime: int) -> None:
    task = root / str(pid) / "task" / str(tid)
    task.mkdir(parents=True, exist_ok=True)
    fields = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 20
    (task / "stat").write_text(f"{tid} ({name}) {' '.join(fields)}\n")


def test_thread_ticks_and_cpu_per_thread(tmp_path: Path) -> None:
    _task(tmp_path, 5, 5, "python main", 100, 10)
    _task(tmp_path, 5, 6, "ort", 50, 0)
    before = pp.thread_ticks(5, tmp_path)
    assert before[5] == ("python main", 100, 10)
    _task(tmp_path, 5, 5, "python main", 100 + pp.TICK, 10)
    _task(tmp_path, 5, 7, "new", pp.TICK // 2, 0)
    rows = pp.thread_cpu(before, pp.thread_ticks(5, tmp_path), wall=1.0)
    assert [(r.tid, round(r.cores, 2)) for r in rows] == [(5, 1.0), (7, 0.5)]


def test_raw_profiles_are_summarised_per_thread_with_names() -> None:
    assert pp.thread_names(RAW) == {10: "MainThread", 11: "ort-cnn-1_0"}
    summary = pp.summarize_raw(RAW)
    assert summary["MainThread"] == [("epoll_pwait", 0.6), ("sendmsg", 0.4)]
    assert summary["ort-cnn-1_0"] == [("MlasConv", 1.0)]


def test_the_section_replaces_its_previous_version(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nkept\n")
    pp.write_section("first\n", results)
    pp.write_section("second\n", results)
    text = results.read_text()
    assert text.count("<!-- section:profile begin -->") == 1
    assert "second" in text and "first" not in text
    assert text.startswith("# Results\n\nkept\n")
