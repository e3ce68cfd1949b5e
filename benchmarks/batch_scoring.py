"""Batch scoring throughput: a standalone Spark cluster against in-process ONNX Runtime.

``python -m benchmarks.batch_scoring [--iris-rows N --cnn-rows N --rounds N --write]``
trains the quickstart's iris model and registers the CNN of :mod:`benchmarks.models` in a
temporary workspace, starts a master and two 1-core workers from the pyspark wheel, and
measures, for each model, rows per CPU-second of

- ``ort``: ONNX Runtime in this process, one thread, over arrays already in memory, at
  the batch size (of a few tried) that gives it the most rows per CPU-second; the cluster
  runs at that batch size too (ONNX Runtime's batch and Spark's Arrow batch);
- ``spark``: ``amlpkg.spark.score`` over a Parquet file on the cluster, into Spark's
  ``noop`` sink (the scoring, without writing the result);
- ``bare``: the same ``mapInArrow`` with no model, passing the ids through: what Spark's
  row path costs by itself;
- ``files``: ``amlpkg.spark.direct.score_parquet_files`` on the same cluster: executors
  read the Parquet file's row groups and write the scored Parquet folder themselves;
- ``local``: the same file to file in this process, one ORT thread;
- ``per-row UDF``: a naive pandas UDF on the same cluster that calls ONNX Runtime once
  per row (a cached session), on fewer rows (rows per second of wall time).

A job's CPU is summed over every process of the cluster (:mod:`benchmarks.cluster_cpu`):
"all processes" (master, workers, executors, their Python workers, the driver's JVM and
this process) and "executors" (executor JVMs and their Python workers). The goal, rows per
CPU-second of all processes >= 0.7x in-process ONNX Runtime's, counts every core a job
keeps busy; the executors' figure shows how much of the gap is Spark's fixed machinery.
Each round measures ``ort``, ``spark``, ``bare``, ``files`` and ``local`` one after the
other (other work on a shared machine weighs on all alike); the best round of each counts.
After a warm-up job per path (executors, Python workers, sessions). Spark's own split
size is kept (file size / 2 cores here): every task costs a Python worker round trip.
Printed as Markdown; ``--write`` puts it into ``RESULTS.md`` between markers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from amlpkg.spark.session import ARROW_POOL
from benchmarks.cluster_cpu import ClusterCpu
from benchmarks.models import BenchModel, build_cnn
from benchmarks.report import put_section
from benchmarks.spark_baselines import per_row_udf, transport_only
from benchmarks.sysinfo import machine

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "batch-scoring"
GOAL = 0.7
EXECUTOR_CORES = 2  # two workers of one core each
# In-process ORT tries these batch sizes; the cluster scores at the best. Smaller ones gained
# nothing in ORT (10,000 iris rows, 16 images) while every engine pays per batch.
IRIS_BATCHES = (10_000, 100_000)
CNN_BATCHES = (16, 32, 64, 128)
CNN_ORT_ROWS = 8_192  # in-process ORT's arrays: enough for a rate, not the whole file
CNN_CHUNK = 4_096  # the CNN's input is generated and written this many rows at a time


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def in_process(path: Path, name: str, x: np.ndarray, batch: int, passes: int = 3) -> float:
    """Rows per CPU second of one-thread ORT over ``x`` in batches (best of ``passes``).

    CPU time, not wall time: on one thread they agree on an idle machine, and on a
    shared one CPU time is what the scoring cost.
    """
    session = _session(path)
    session.run(None, {name: x[:batch]})
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for i in range(0, len(x), batch):
            session.run(None, {name: x[i : i + batch]})
        best = min(best, time.process_time() - started)
    return len(x) / best


def best_batch(path: Path, name: str, x: np.ndarray, batches: Sequence[int]) -> int:
    """The batch size (of ``batches``) at which one-thread ORT scores the most rows per CPU-s."""
    rates = {b: in_process(path, name, x, b, passes=2) for b in batches}
    return max(rates, key=lambda b: rates[b])


def in_process_files(
    ref: str, home: Path, source: Path, inputs: Any, batch_rows: int, passes: int = 1
) -> float:
    """Rows per CPU-second of the same file-to-file work in this process, one ORT thread:
    read ``source``'s batches as a task does (the library's reader), score them, write a
    Parquet file.

    What one core does end to end when the rows come from a file and go to one; the
    ceiling of the executors' Parquet path per core."""
    from amlpkg.batch.kernel import score_batches, session_for
    from amlpkg.batch.model import resolve_model
    from amlpkg.batch.parquet_in import parquet_batches
    from amlpkg.batch.parquet_out import ParquetOut
    from amlpkg.store.workspace import open_workspace

    with open_workspace(home) as ws:
        resolved = resolve_model(ref, workspace=ws)
    session = session_for(resolved.digest, lambda: resolved.data, threads=1)
    schema = pq.read_schema(source)
    plan = resolved.plan(schema, inputs, None, ["id"])
    target = source.with_name(f"{source.stem}-local.parquet")
    best, rows = float("inf"), 0
    for _ in range(passes):
        started = time.process_time()
        batches = parquet_batches(source, batch_rows, columns=plan.read_names(schema))
        writer, rows = None, 0
        for out in score_batches(session, plan, batches, batch_rows):
            writer = writer or ParquetOut(target, out.schema)  # as the executors write
            writer.write(out)
            rows += out.num_rows
        if writer is not None:
            writer.close()
        best = min(best, time.process_time() - started)
    target.unlink(missing_ok=True)
    return rows / best


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def cache(path: Path, chunk: int = 8 * 1024 * 1024) -> None:
    """Read ``path`` so its pages are in the page cache before a measured job.

    In-process ORT's rows are in memory; so should the engines' be. Here (a VM that pages
    out file pages unused for a minute) a 3 GiB input otherwise comes partly from disk."""
    with path.open("rb") as source:
        while source.read(chunk):
            pass


@dataclass(frozen=True)
class Job:
    """One job on the cluster: wall seconds and CPU seconds (all processes, executors)."""

    wall_s: float
    all_s: float
    executors_s: float


def cluster_job(action: Callable[[], object], roots: list[int]) -> Job:
    """Run ``action`` (a Spark job) and what it cost the cluster."""
    with ClusterCpu(roots) as cpu:
        wall = timed(action)
    return Job(wall, cpu.all_s, cpu.executors_s)


def write_parquet(path: Path, columns: dict[str, Any], row_group: int) -> None:
    """A Parquet file with an ``id`` column and ``columns``."""
    rows = len(next(iter(columns.values())))
    pq.write_table(pa.table({"id": np.arange(rows), **columns}), path, row_group_size=row_group)


def write_images(path: Path, model: BenchModel, rows: int, row_group: int = 128) -> np.ndarray:
    """``rows`` images as raw float32 bytes per row (Spark moves a binary value as one
    block), written a chunk at a time; returns the first :data:`CNN_ORT_ROWS` as an array.

    Dictionary encoding stays on for the ids only: every image is distinct, and a
    dictionary page of them is only a cost to write and to read."""
    writer = None
    first = np.empty((0, *model.sample_shape), np.float32)
    for start in range(0, rows, CNN_CHUNK):
        images = model.sample(min(CNN_CHUNK, rows - start), seed=start)
        if len(first) < CNN_ORT_ROWS:
            first = np.concatenate([first, images[: CNN_ORT_ROWS - len(first)]])
        ids = np.arange(start, start + len(images))
        table = pa.table({"id": ids, "image": pa.array([r.tobytes() for r in images], pa.binary())})
        writer = writer or pq.ParquetWriter(str(path), table.schema, use_dictionary=["id"])
        writer.write_table(table, row_group_size=row_group)
    if writer is not None:
        writer.close()
    return first


@dataclass(frozen=True)
class Case:
    """One model's measurement: where its rows are and how they feed it."""

    label: str
    ref: str
    onnx_file: Path
    tensor: str
    arrays: np.ndarray  # in-process ORT's input
    source: Path  # the Parquet file the cluster scores
    inputs: Any
    rows: int
    batches: Sequence[int]
    arrow_batch: int  # Spark's Arrow batch (maxRecordsPerBatch): ORT scores slices of it
    udf_df: Any
    udf_args: tuple[Any, ...]
    udf_rows: int


def _best(jobs: list[Job], rows: int) -> dict[str, float]:
    return {
        "wall": max(rows / j.wall_s for j in jobs),
        "all": max(rows / j.all_s for j in jobs),
        "executors": max(rows / j.executors_s for j in jobs),
    }


def measure(spark: Any, case: Case, home: Path, roots: list[int], rounds: int) -> dict[str, Any]:
    """One model's row of the table."""
    import amlpkg.spark
    from amlpkg.batch.model import resolve_model
    from amlpkg.spark.direct import score_parquet_files
    from amlpkg.store.workspace import open_workspace

    batch = best_batch(case.onnx_file, case.tensor, case.arrays, case.batches)
    print(f"{case.label}: ORT's best batch {batch}", file=sys.stderr)
    arrow_batch = max(batch, case.arrow_batch)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch))
    df = spark.read.parquet(str(case.source))
    # Only the id passes through: the CNN's image column need not travel back to the JVM.
    scored = amlpkg.spark.score(
        df, case.ref, inputs=case.inputs, keep=["id"], batch_rows=batch, record_lineage=False,
        home=home,
    )  # fmt: skip
    with open_workspace(home) as ws:
        resolved = resolve_model(case.ref, workspace=ws)
    target = case.source.with_name(f"{case.source.stem}-scored")

    def files() -> None:
        score_parquet_files(
            spark, resolved, case.source, target, inputs=case.inputs, keep=["id"],
            batch_rows=batch, overwrite=True,
        )  # fmt: skip

    paths: dict[str, Callable[[], object]] = {
        "spark": scored.write.format("noop").mode("overwrite").save,
        "bare": transport_only(df).write.format("noop").mode("overwrite").save,
        "files": files,
    }
    for action in paths.values():
        action()  # warm-up: executors, Python workers, sessions
    jobs: dict[str, list[Job]] = {name: [] for name in paths}
    ort_rates, local_rates = [], []
    for _ in range(rounds):
        ort_rates.append(in_process(case.onnx_file, case.tensor, case.arrays, batch, passes=1))
        for name, action in paths.items():
            cache(case.source)
            jobs[name].append(cluster_job(action, roots))
        cache(case.source)
        local_rates.append(in_process_files(case.ref, home, case.source, case.inputs, batch))
        print(f"{case.label}: round {len(local_rates)} of {rounds} done", file=sys.stderr)
    udf_s = timed(
        per_row_udf(case.udf_df, *case.udf_args).write.format("noop").mode("overwrite").save
    )
    return {
        "model": case.label,
        "rows": case.rows,
        "batch": batch,
        "arrow_batch": arrow_batch,
        "ort": max(ort_rates),
        "local": max(local_rates),
        "udf_rows": case.udf_rows,
        "udf": case.udf_rows / udf_s,
        **{name: _best(runs, case.rows) for name, runs in jobs.items()},
    }


def run(
    iris_rows: int,
    cnn_rows: int,
    udf_rows: int,
    rounds: int,
    folder: Path,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """Train/register the models, start the cluster, measure both models."""
    from pyspark.sql import SparkSession

    from amlpkg.spark.standalone import StandaloneCluster
    from amlpkg.trainer.quickstart import run_quickstart
    from amlpkg.trainer.registry import register, resolve_model_file

    home = folder / "home"
    iris = run_quickstart(home, folds=2).model_version
    _, iris_path = resolve_model_file(iris.ref, home=home)
    cnn_file = folder / "cnn.onnx"
    cnn_model = build_cnn()
    onnx.save(cnn_model.proto, str(cnn_file))
    cnn = register("cnn", cnn_file, home=home)

    rng = np.random.default_rng(0)
    x = rng.uniform([4.0, 2.0, 1.0, 0.1], [8.0, 4.5, 7.0, 2.5], (iris_rows, 4)).astype(np.float32)
    features = ["f0", "f1", "f2", "f3"]
    write_parquet(folder / "iris.parquet", {f: x[:, i] for i, f in enumerate(features)}, 125_000)
    images = write_images(folder / "cnn.parquet", cnn_model, cnn_rows)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with StandaloneCluster(folder / "spark", workers=2, worker_cores=1, worker_memory="1g") as c:
        spark = (
            SparkSession.builder.master(c.master_url)
            .appName("amlpkg-bench")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.executor.memory", "640m")
            .config("spark.executorEnv.ARROW_DEFAULT_MEMORY_POOL", ARROW_POOL)
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        try:
            cases = [
                Case(
                    "iris (logistic regression, 4 features)", f"{iris.name}@production",
                    iris_path, "X", x, folder / "iris.parquet", features, iris_rows,
                    IRIS_BATCHES, 10_000,
                    spark.read.parquet(str(folder / "iris.parquet")).limit(udf_rows),
                    (iris_path, "X", features, (4,)), udf_rows,
                ),
                Case(
                    "cnn (3x64x64 image as raw bytes)", cnn.ref, cnn_file, "input", images,
                    folder / "cnn.parquet", {"input": "image"}, cnn_rows, CNN_BATCHES, 128,
                    spark.read.parquet(str(folder / "cnn.parquet")).limit(min(256, cnn_rows)),
                    (cnn_file, "input", ["image"], (3, 64, 64)), min(256, cnn_rows),
                ),
            ]  # fmt: skip
            chosen = [case for case in cases if only is None or case.label.startswith(only)]
            return [measure(spark, case, home, c.pids(), rounds) for case in chosen]
        finally:
            spark.stop()


NOTES = (
    "`spark.score` is `amlpkg.spark.score` on a DataFrame into Spark's `noop` sink;"
    ' "without a model" is the same mapInArrow passing the ids through: Spark\'s row path'
    " alone (Parquet scan, rows to Arrow, the socket to the Python worker and back)."
    ' "Executors read+write Parquet" is `amlpkg.spark.direct.score_parquet_files`, what'
    " `amlpkg score --engine spark` runs for Parquet on local paths: each task reads row"
    " groups with pyarrow, scores and writes its part file, so no row goes through the JVM"
    ' (and, unlike the noop sink, the output is written). "The same file to file in'
    ' process" reads, scores and writes it in this process on one ORT thread, with the'
    " library's reader and writer. The input file is read once before each job so that it"
    " comes from the page cache, as in-process ORT's arrays come from memory; the CNN's"
    " image column is written without dictionary encoding (every image differs: such a"
    " dictionary only costs). pyarrow allocates from mimalloc, its default, everywhere"
    " (`spark.executorEnv.ARROW_DEFAULT_MEMORY_POOL`, which `amlpkg score --engine spark`"
    " sets). The per-row UDF shows what batching buys."
    "\n\n"
    "Where the CNN's time goes (rows of 48 KiB; CPU per process from /proc, perf and minor"
    " page faults per row on the file to file in one process, py-spy on the executors'"
    " Python workers). The Parquet"
    " path's big cost was pyarrow's reader, which pre-buffers by default: a task's"
    " iteration kept every column chunk it had read until its end (a task's 16,384 rows,"
    " 768 MiB), so every row arrived in fresh memory the kernel faulted in (12 minor faults"
    " a row): reading took about four times its own CPU with jemalloc and ten times with"
    " mimalloc, which is why jemalloc had looked the better pool. `amlpkg.batch.parquet_in`"
    " opens files without pre-buffering (and memory-mapped, so pages are decompressed from"
    " the page cache without a copy into a read buffer first: about 3%): the reader holds"
    " about a row group, faults fall to about 0.2 a row, and mimalloc keeps reusing its"
    " blocks at any row-group size, where pyarrow's jemalloc returned the pages of large"
    " blocks to the kernel whatever its decay settings (96 MiB row groups: 20 faults a row,"
    " 0.68x file to file against 0.87x), so both engines now use mimalloc. Batches are read"
    " 4 MiB at a time (85 images) and the model runs on slices of them at its best batch,"
    " so the reader, the conversion and the writer pay their per-batch costs once per 80"
    " rows rather than per 16 (about 2%); numeric columns become numpy views (and back)"
    " without pyarrow's pandas import, which a fresh Python worker paid on its first batch;"
    " and a Python worker freezes what it holds once its session is made, since PySpark's"
    " daemon runs a full garbage collection after every task (25-35 ms each with ONNX"
    " Runtime, pyarrow and amlpkg loaded, 5% of the workers' samples). The executors' Python"
    " workers now spend about 83% of their samples in ONNX Runtime (py-spy `--native`), 10%"
    " reading Parquet (decompressing and copying 48 KiB a row), 5% in the batch function,"
    " 1% writing; they run at about 0.8x of ORT's rows per CPU-second, partly because ONNX"
    " Runtime itself does 3-6% fewer rows per CPU-second with both cores loaded than alone."
    " Of a job's CPU the Python workers take about 90%, the executor JVMs 4-5%, the"
    " driver's JVM 3-7% (scheduling the tasks, its JIT and GC), master and workers under 1%."
    " File to file in one process spends about 80% of its CPU in ONNX Runtime (perf), the"
    " kernel about 12% (mostly scheduling on this shared VM), memcpy 4%, Python 6%."
    " mapInArrow: Spark's row path alone costs about as much CPU per row as the model (the"
    ' "without a model" column: 0.6x to 1.0x of ORT across runs, with the machine\'s load):'
    " the executor JVMs write the Arrow stream to the Python worker's socket, run the"
    " vectorized Parquet reader, turn rows into Arrow and collect garbage, so mapInArrow"
    " lands under half of ORT and no batch function can bring it to 0.7x for rows this"
    " large. For a model as cheap as"
    " the iris regression (tens of ns per row in ORT), reading and writing Parquet costs"
    " several times the scoring even in one process (the in-process file to file column),"
    " so 0.7x of ORT on arrays in memory is out of reach for any engine that reads files;"
    " the goal is meaningful for models like the CNN."
)


def _verdict(ratio: float) -> str:
    return "met" if ratio >= GOAL else "not met"


def _ratios(path: dict[str, float], ort_rate: float) -> str:
    return f"{path['all'] / ort_rate:.2f}x ({path['executors'] / ort_rate:.2f}x)"


def markdown(rows: list[dict[str, Any]], load: tuple[float, float], rounds: int) -> str:
    """The results table and the conditions it was measured in."""
    info = machine()
    lines = [
        f"Measured on {info['CPU']}, {info['cores (visible)']} cores, {info['memory']};"
        f" load average {load[0]:.1f} before, {load[1]:.1f} after (a shared machine:"
        " other work ran meanwhile). Spark standalone, 2 workers x 1 core, executors 640 MiB,"
        " driver in this process; ORT 1 thread, spinning off, everywhere; best of"
        f" {rounds} interleaved rounds after a warm-up.",
        "",
        "Ratios are rows per CPU-second against in-process ORT's rows per CPU-second at its"
        " best batch size (the batch column: the cluster's ONNX Runtime calls and the"
        " executors' Parquet reads use it too; Spark's Arrow batches, in parentheses, are"
        " sliced to it). The first figure counts every process of the cluster (master,"
        " workers, executors and their Python"
        " workers, the driver's JVM and Python): that is the goal's \"per core used\", since"
        " every one of them keeps a core busy for the job; the figure in parentheses counts"
        " the executors (their JVMs and Python workers) alone, the cores doing the work.",
        "",
        "| model | rows | batch (Arrow batch) | in-process ORT rows per CPU-s |"
        " `spark.score` (mapInArrow) rows/s wall | per core used / ORT (executors only) |"
        " mapInArrow without a model,"
        " per core used / ORT | executors read+write Parquet rows/s wall | per core used /"
        " ORT (executors only) | the same file to file in process / ORT | per-row pandas UDF"
        " rows/s (rows) | goal >= 0.7x per core used |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['rows']:,} | {r['batch']:,} ({r['arrow_batch']:,})"
            f" | {r['ort']:,.0f}"
            f" | {r['spark']['wall']:,.0f} | {_ratios(r['spark'], r['ort'])}"
            f" | {r['bare']['all'] / r['ort']:.2f}x | {r['files']['wall']:,.0f}"
            f" | {_ratios(r['files'], r['ort'])} | {r['local'] / r['ort']:.2f}x"
            f" | {r['udf']:,.0f} ({r['udf_rows']:,})"
            f" | mapInArrow {_verdict(r['spark']['all'] / r['ort'])}; Parquet files"
            f" {_verdict(r['files']['all'] / r['ort'])} |"
        )
    lines += ["", NOTES]
    return "\n".join(lines) + "\n"


def write_section(text: str, results: Path = RESULTS) -> None:
    """Replace (or append) the marked batch scoring section of ``RESULTS.md``."""
    old = results.read_text() if results.exists() else ""
    body = f"## Batch scoring on Spark (benchmarks/batch_scoring.py)\n\n{text}"
    results.write_text(put_section(old, SECTION, body))


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.batch_scoring [--iris-rows N --cnn-rows N --write]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iris-rows", type=int, default=1_000_000)
    parser.add_argument("--cnn-rows", type=int, default=65_536)
    parser.add_argument("--udf-rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best counts)")
    parser.add_argument("--write", action="store_true", help="put the section into RESULTS.md")
    parser.add_argument("--only", choices=["iris", "cnn"], help="measure one model")
    args = parser.parse_args(argv)
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") != ARROW_POOL:
        # pyarrow picks its pool at import: this process (the in-process file to file,
        # the driver) allocates like the executors only when started with it set.
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = ARROW_POOL
        argv = sys.argv[1:] if argv is None else argv
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks.batch_scoring", *argv])
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="amlpkg-batch-bench-") as tmp:
        rows = run(args.iris_rows, args.cnn_rows, args.udf_rows, args.rounds, Path(tmp), args.only)
    text = markdown(rows, (before, os.getloadavg()[0]), args.rounds)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
