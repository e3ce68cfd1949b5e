"""Scoring on a real standalone Spark cluster (two workers): every row equals in-process ORT."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import Models

pytestmark = pytest.mark.slow

IRIS_ROWS = 1_000_000
CNN_ROWS = 1_024  # 48 KiB per row: 1M rows would be 48 GiB (see README)
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _in_process(
    models: Models, ref: str, feeds: dict[str, np.ndarray], batch: int | None = None
) -> list[np.ndarray]:
    """ORT in this process: one call, or calls of ``batch`` rows on one thread like a task."""
    from amlpkg.trainer.registry import resolve_model_file

    _, path = resolve_model_file(ref, home=models.home)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1 if batch else 0
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = len(next(iter(feeds.values())))
    step = batch or rows
    parts = [
        session.run(None, {k: v[i : i + step] for k, v in feeds.items()})
        for i in range(0, rows, step)
    ]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def _read_sorted(folder: Path) -> pa.Table:
    return pq.read_table(folder).sort_by("id")


def test_a_million_rows_scored_on_two_workers_equal_in_process_onnx_runtime(
    spark: Any, models: Models, tmp_path: Path
) -> None:
    import amlpkg.spark
    from amlpkg.store.lineage_edges import edges_from
    from amlpkg.store.workspace import open_workspace

    rng = np.random.default_rng(7)
    features = rng.uniform([4.0, 2.0, 1.0, 0.1], [8.0, 4.5, 7.0, 2.5], (IRIS_ROWS, 4))
    features = features.astype(np.float32)
    table = pa.table(
        {"id": np.arange(IRIS_ROWS), **{n: features[:, i] for i, n in enumerate(FEATURES)}}
    )
    source = tmp_path / "iris.parquet"
    pq.write_table(table, source, row_group_size=125_000)

    started = time.perf_counter()
    df = spark.read.parquet(str(source))
    scored = amlpkg.spark.score(df, models.iris, inputs=FEATURES, home=models.home)
    assert scored.rdd.getNumPartitions() > 1  # both workers get tasks
    scored.write.parquet(str(tmp_path / "scored"))
    seconds = time.perf_counter() - started
    got = _read_sorted(tmp_path / "scored")
    print(f"\n{IRIS_ROWS} rows scored on the cluster in {seconds:.1f} s")

    assert got.num_rows == IRIS_ROWS
    assert np.array_equal(got.column("id").to_numpy(), np.arange(IRIS_ROWS))
    spark_label = got.column("label").to_numpy()
    spark_probs = np.stack(got.column("probabilities").to_numpy(zero_copy_only=False))
    # Bit for bit what ORT gives in this process for the same batches: each part file is one
    # task's output in order, scored in Arrow batches of 10,000 rows on one thread.
    for part in sorted((tmp_path / "scored").glob("part-*.parquet")):
        ids = pq.read_table(part, columns=["id"]).column("id").to_numpy()
        assert np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids)))  # contiguous
        label, probabilities = _in_process(models, models.iris, {"X": features[ids]}, 10_000)
        assert np.array_equal(spark_label[ids], label)
        np.testing.assert_array_equal(spark_probs[ids], probabilities)
    # One multi-threaded call over the whole table: same labels; probabilities differ by at
    # most an ulp on some rows (SIMD remainders fall elsewhere in a bigger batch).
    label, probabilities = _in_process(models, models.iris, {"X": features})
    assert np.array_equal(spark_label, label)
    np.testing.assert_allclose(spark_probs, probabilities, rtol=1e-6, atol=1e-7)

    with open_workspace(models.home) as ws:
        edges = edges_from(ws, ("model_version", models.iris.replace("@production", ":1")))
    scored_ids = [e.dst_id for e in edges if e.relation == "scored"]
    assert f"{source}@sha256:" in " ".join(scored_ids)


def test_a_cnn_scores_image_rows_from_an_array_column(
    spark: Any, models: Models, tmp_path: Path
) -> None:
    import amlpkg.spark
    from benchmarks.models import build_cnn

    images = build_cnn().sample(CNN_ROWS, seed=3)
    flat = images.reshape(CNN_ROWS, -1)
    column = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
    source = tmp_path / "images.parquet"
    raw = pa.array([row.tobytes() for row in images], pa.binary())
    pq.write_table(
        pa.table(
            {"id": np.arange(CNN_ROWS), "image": column.cast(pa.list_(pa.float32())), "raw": raw}
        ),
        source,
        row_group_size=128,
    )
    df = spark.read.parquet(str(source))
    scored = amlpkg.spark.score(
        df, models.cnn, inputs={"input": "image"}, outputs={"output": "logits"}, keep=["id"],
        batch_rows=64, home=models.home,
    )  # fmt: skip
    assert scored.columns == ["id", "logits"]
    scored.write.parquet(str(tmp_path / "scored"))
    got = _read_sorted(tmp_path / "scored")

    (expected,) = _in_process(models, models.cnn, {"input": images})
    logits = np.stack(got.column("logits").to_numpy(zero_copy_only=False))
    assert logits.shape == (CNN_ROWS, 10)
    # Convolutions may pick other kernels for other batch sizes: equal to float rounding.
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(logits.argmax(axis=1), expected.argmax(axis=1))

    # The same images as raw float32 bytes in a binary column: the same results.
    from_raw = amlpkg.spark.score(
        df, models.cnn, inputs={"input": "raw"}, keep=["id"], batch_rows=64, home=models.home
    )
    raw_rows = sorted(from_raw.collect(), key=lambda row: row["id"])
    np.testing.assert_array_equal(np.array([row["output"] for row in raw_rows]), logits)


def test_an_executors_error_reaches_the_caller_in_amlpkgs_words(spark: Any, models: Models) -> None:
    import amlpkg.spark
    from amlpkg.errors import InternalError
    from amlpkg.spark.session import call_spark

    rows = [(1, 5.1, 3.5, 1.4, 0.2), (2, None, 3.0, 1.4, 0.2)]
    df = spark.createDataFrame(rows, ["id", *FEATURES])
    scored = amlpkg.spark.score(
        df, models.iris, inputs=FEATURES, record_lineage=False, home=models.home
    )
    with pytest.raises(InternalError) as caught:
        call_spark(scored.collect, "score the rows")
    assert "null" in caught.value.message
    assert "sepal_length" in caught.value.message


def test_parquet_files_scored_by_the_executors_equal_in_process_onnx_runtime(
    spark: Any, models: Models, tmp_path: Path
) -> None:
    """The direct path (`amlpkg score --engine spark` on Parquet): executors read and write
    the files with pyarrow; each part is one task's row groups, scored in 10,000-row batches."""
    from amlpkg.batch.model import resolve_model
    from amlpkg.errors import InternalError
    from amlpkg.spark.direct import score_parquet_files
    from amlpkg.store.workspace import open_workspace

    rows = 200_000
    rng = np.random.default_rng(11)
    features = rng.uniform([4.0, 2.0, 1.0, 0.1], [8.0, 4.5, 7.0, 2.5], (rows, 4))
    features = features.astype(np.float32)
    source = tmp_path / "iris"
    source.mkdir()
    for name, lo, hi in (("part-0.parquet", 0, 120_000), ("part-1.parquet", 120_000, rows)):
        table = pa.table(
            {"id": np.arange(lo, hi), **{n: features[lo:hi, i] for i, n in enumerate(FEATURES)}}
        )
        pq.write_table(table, source / name, row_group_size=25_000)
    with open_workspace(models.home) as ws:
        resolved = resolve_model(models.iris, workspace=ws)
    target = tmp_path / "scored"

    count = score_parquet_files(spark, resolved, source, target, inputs=FEATURES, keep=["id"])
    assert count == rows
    parts = sorted(target.glob("part-*.parquet"))
    assert len(parts) >= 2 and (target / "_SUCCESS").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris", "scored"]  # no staging left
    got = _read_sorted(target)
    assert got.column_names == ["id", "label", "probabilities"]
    assert np.array_equal(got.column("id").to_numpy(), np.arange(rows))
    for part in parts:
        table = pq.read_table(part)
        ids = table.column("id").to_numpy()
        assert np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids)))  # contiguous
        label, probabilities = _in_process(models, models.iris, {"X": features[ids]}, 10_000)
        assert np.array_equal(table.column("label").to_numpy(), label)
        scored = np.stack(table.column("probabilities").to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(scored, probabilities)

    # A failing task (a null feature) fails the call in amlpkg's words; the output is kept.
    bad = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table({"id": [1], **{n: pa.array([None], pa.float32()) for n in FEATURES}}), bad
    )
    with pytest.raises(InternalError, match="null"):
        score_parquet_files(spark, resolved, bad, target, inputs=FEATURES, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "iris", "scored"]
    assert pq.read_table(target).num_rows == rows
