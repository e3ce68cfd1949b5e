"""The local engine and `amlpkg score`: files in, files out, lineage recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import Models

FEATURES = ["f0", "f1", "f2", "f3"]


def _table(rows: int) -> pa.Table:
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 8.0, (rows, 4)).astype(np.float32)
    return pa.table({"id": np.arange(rows), **{n: x[:, i] for i, n in enumerate(FEATURES)}})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "amlpkg"), *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_score_file_equals_in_process_onnx_runtime_and_records_lineage(
    models: Models, tmp_path: Path
) -> None:
    from amlpkg.batch.local import score_file
    from amlpkg.store.lineage_edges import edges_from
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.registry import resolve_model_file

    table = _table(25_000)
    pq.write_table(table, tmp_path / "in.parquet")
    result = score_file(
        models.iris, tmp_path / "in.parquet", tmp_path / "out.parquet", inputs=FEATURES,
        batch_rows=4096, home=models.home,
    )  # fmt: skip
    assert result.rows == 25_000
    got = pq.read_table(tmp_path / "out.parquet")
    version, path = resolve_model_file(models.iris, home=models.home)
    x = np.stack([table.column(n).to_numpy() for n in FEATURES], axis=1)
    label, probs = ort.InferenceSession(str(path)).run(None, {"X": x})
    assert np.array_equal(got.column("label").to_numpy(), label)
    np.testing.assert_allclose(
        np.stack(got.column("probabilities").to_numpy(zero_copy_only=False)), probs, rtol=1e-6
    )
    with open_workspace(models.home) as ws:
        scored = {e.dst_id for e in edges_from(ws, ("model_version", version.ref))}
        into = {e.dst_id for e in edges_from(ws, ("dataset", result.input_id))}
    assert result.input_id in scored
    assert result.input_id.startswith(f"{(tmp_path / 'in.parquet').resolve()}@sha256:")
    assert into == {result.output_id}


def test_images_are_read_without_holding_the_file_and_score_as_onnx_runtime_does(
    models: Models, tmp_path: Path
) -> None:
    from amlpkg.trainer.registry import resolve_model_file

    rng = np.random.default_rng(3)
    images = rng.standard_normal((1024, 3, 64, 64)).astype(np.float32)  # 48 MiB, 48 KiB a row
    raw = pa.array([row.tobytes() for row in images], pa.binary())
    table = pa.table({"id": np.arange(1024), "image": raw, "note": ["unread"] * 1024})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=32)
    # A fresh process: the Arrow pool's peak is its own. pyarrow's pre-buffering reader
    # (and the dataset scanner) held every row read until the end: 48 MiB here.
    script = (
        "import json, sys, pyarrow as pa\n"
        "from amlpkg.batch.local import score_file\n"
        "r = score_file(sys.argv[1], sys.argv[2], sys.argv[3], inputs={'input': 'image'},\n"
        "    keep=['id'], batch_rows=16, home=sys.argv[4])\n"
        "print(json.dumps([r.rows, pa.default_memory_pool().max_memory()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, models.cnn, str(tmp_path / "in.parquet"),
         str(tmp_path / "out.parquet"), str(models.home)],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    rows, peak = json.loads(done.stdout)
    assert rows == 1024
    assert peak < 24 * 1024 * 1024, f"{peak} bytes of Arrow memory at the peak"  # 4 MiB reads
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.schema.names == ["id", "output"]
    _, path = resolve_model_file(models.cnn, home=models.home)
    session = ort.InferenceSession(str(path))
    runs = [session.run(None, {"input": images[i : i + 16]})[0] for i in range(0, 1024, 16)]
    want = np.concatenate(runs)
    assert np.array_equal(np.stack(got.column("output").to_numpy(zero_copy_only=False)), want)


@pytest.mark.slow
def test_the_cli_scores_csv_to_csv_and_refuses_to_overwrite(models: Models, tmp_path: Path) -> None:
    pacsv.write_csv(_table(100), tmp_path / "in.csv")
    args = ["score", models.iris, "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
            "--input-columns", "f0,f1,f2,f3", "--home", str(models.home)]  # fmt: skip
    done = _cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 100
    out = pacsv.read_csv(tmp_path / "o.csv")
    assert out.column_names[-4:] == [
        "label",
        "probabilities_0",
        "probabilities_1",
        "probabilities_2",
    ]
    again = _cli(*args)
    assert again.returncode == 2
    assert "exists" in again.stderr and "--overwrite" in again.stderr
    wrong = _cli(
        "score", models.iris, "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "x.csv"),
        "--home", str(models.home),
    )  # fmt: skip
    assert wrong.returncode == 2 and "cannot tell which columns feed input 'X'" in wrong.stderr


@pytest.mark.slow
def test_the_cli_scores_on_spark(models: Models, tmp_path: Path) -> None:
    """`--engine spark` end to end, on a local[1] master (the cluster's cores are taken)."""
    from tests.batch.conftest import spark_available
    from tests.services import require

    require(spark_available(), "pyspark and Java 17 are needed")
    pq.write_table(_table(3000), tmp_path / "in.parquet")
    done = _cli(
        "score", models.iris, "-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out"),
        "--engine", "spark", "--spark-master", "local[1]", "--batch-size", "1000",
        "--output-column", "label=species", "--input-columns", "f0,f1,f2,f3", "--keep", "id",
        "--home", str(models.home), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["rows"] == 3000
    got = pq.read_table(tmp_path / "out").sort_by("id")
    assert got.column_names == ["id", "species"]
    assert result["output_id"].startswith(f"{(tmp_path / 'out').resolve()}@sha256:")
