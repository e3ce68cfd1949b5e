"""Where one measured point spends its time: per-thread CPU and a py-spy profile.

``python -m benchmarks.profile_point --model cnn --path http --concurrency 16`` starts
our server, drives it with NVIDIA perf_analyzer, and while the load runs records

- the CPU each server thread used (``/proc/<pid>/task/*/stat``): which thread is the
  bottleneck (the event loop, the ONNX Runtime worker, its intra-op threads, gRPC's
  poller), and how much of the machine the server used at all;
- a py-spy profile of every thread (``--native``), summarised as the frames where each
  thread spends its samples, idle waits (``epoll_wait``) shown as such.

It prints Markdown and, with ``--write``, puts it into ``RESULTS.md`` between markers,
so the report of a target that is not met carries the profile that says why. py-spy
comes with the dev extra; without it only the thread CPU is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.models import all_models
from benchmarks.pa_load import run_perf_analyzer
from benchmarks.report import put_section
from benchmarks.servers import serve, server_defs

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "profile"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ThreadCpu:
    """CPU one thread used over the window, in cores (user + system)."""

    tid: int
    name: str
    user: float
    system: float

    @property
    def cores(self) -> float:
        """User plus system time per second of wall time."""
        return self.user + self.system


def thread_ticks(pid: int, proc: Path = Path("/proc")) -> dict[int, tuple[str, int, int]]:
    """``tid -> (name, utime, stime)`` in clock ticks for every thread of ``pid``."""
    found: dict[int, tuple[str, int, int]] = {}
    for task in (proc / str(pid) / "task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(task.name)] = (name, int(fields[11]), int(fields[12]))
    return found


def thread_cpu(
    before: dict[int, tuple[str, int, int]], after: dict[int, tuple[str, int, int]], wall: float
) -> list[ThreadCpu]:
    """The threads that used CPU between two snapshots, busiest first."""
    rows = []
    for tid, (name, user, system) in after.items():
        _, user0, system0 = before.get(tid, (name, 0, 0))
        du, ds = (user - user0) / TICK / wall, (system - system0) / TICK / wall
        if du + ds > 0.005:
            rows.append(ThreadCpu(tid, name, du, ds))
    return sorted(rows, key=lambda r: -r.cores)


def thread_names(raw: str) -> dict[int, str]:
    """``tid -> name`` as py-spy saw the threads (``thread (1234): MainThread``)."""
    names: dict[int, str] = {}
    for line in raw.splitlines():
        head = line.split(";", 1)[0]
        if head.startswith("thread (") and "):" in head:
            tid, _, name = head[len("thread (") :].partition("):")
            if tid.strip().isdigit():
                names[int(tid)] = name.strip()
    return names


def summarize_raw(raw: str, top: int = 8) -> dict[str, list[tuple[str, float]]]:
    """py-spy ``--format raw`` lines -> per thread, the leaf frames with their share."""
    leaves: dict[str, Counter[str]] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip() or frames[0]
        leaf = frames[-1].split(" (")[0]
        leaves.setdefault(thread, Counter())[leaf] += int(count)
    summary = {}
    for thread, counter in leaves.items():
        total = sum(counter.values())
        summary[thread] = [(frame, n / total) for frame, n in counter.most_common(top)]
    return summary


def _py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        return None
    argv = [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "--nonblocking"]
    # Python frames only: native unwinding would pause the process it measures.
    argv += ["--threads", "-f", "raw", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile(model_name: str, path: str, concurrency: int, seconds: float) -> str:
    """Run one point and return its Markdown section."""
    model = next(m for m in all_models() if m.name == model_name)
    ours = next(d for d in server_defs() if d.name == "amlpkg")
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        with serve(ours, model, workdir) as endpoint:
            assert endpoint.pid is not None
            url = endpoint.http_base.removeprefix("http://")
            if path.startswith("grpc"):
                url = endpoint.grpc_target or url
            result: dict[str, object] = {}
            load = threading.Thread(
                target=lambda: result.setdefault(
                    "load", run_perf_analyzer(url, path, model.name, concurrency, seconds + 4)
                )
            )
            load.start()
            time.sleep(2.0)  # past perf_analyzer's start-up
            raw_file = workdir / "profile.raw"
            spy = _py_spy(endpoint.pid, seconds, raw_file)
            before, t0 = thread_ticks(endpoint.pid), time.monotonic()
            time.sleep(seconds)
            after, wall = thread_ticks(endpoint.pid), time.monotonic() - t0
            if spy is not None:
                spy.wait(timeout=seconds + 60)
            load.join(timeout=seconds * 3 + 120)
            raw = raw_file.read_text() if raw_file.exists() else ""
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return render(model_name, path, concurrency, thread_cpu(before, after, wall), raw, result)


def render(
    model: str,
    path: str,
    concurrency: int,
    threads: list[ThreadCpu],
    raw: str,
    result: dict[str, object],
) -> str:
    """The Markdown of one profiled point."""
    load = result.get("load")
    rate = f"{load.req_per_s:,.0f} req/s" if hasattr(load, "req_per_s") else "no result"
    lines = [f"### {model} over {path}, concurrency {concurrency}: {rate}", ""]
    lines += ["| thread | cores (user + sys) |", "| --- | --- |"]
    names = thread_names(raw)
    lines += [
        f"| {names.get(t.tid, t.name)} ({t.tid}) | {t.cores:.2f} ({t.user:.2f} + {t.system:.2f}) |"
        for t in threads
    ]
    lines.append(f"| **server total** | **{sum(t.cores for t in threads):.2f}** |")
    summary = summarize_raw(raw)
    if summary:
        lines += [
            "",
            "Where each thread's samples end (py-spy, Python frames; C code shows as its caller):",
            "",
        ]
        for thread, frames in summary.items():
            shown = ", ".join(f"{frame} {share:.0%}" for frame, share in frames[:5])
            lines.append(f"- {thread}: {shown}")
    return "\n".join(lines) + "\n"


def write_section(markdown: str, results: Path = RESULTS) -> None:
    """Replace (or append) the marked profile section of ``RESULTS.md``."""
    text = results.read_text() if results.exists() else ""
    body = f"## Where the time goes (profiles)\n\n{markdown}"
    results.write_text(put_section(text, SECTION, body))


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.profile_point [--model M --path P --concurrency C --write]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="cnn:http:16,cnn:grpc:16,mlp:grpc:16,mlp:http:16")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--write", action="store_true", help="put the section into RESULTS.md")
    args = parser.parse_args(argv)
    sections = []
    for point in args.points.split(","):
        model, path, level = point.split(":")
        sections.append(profile(model, path, int(level), args.seconds))
        print(sections[-1], flush=True)
    if args.write:
        write_section("\n".join(sections))


if __name__ == "__main__":
    main()
