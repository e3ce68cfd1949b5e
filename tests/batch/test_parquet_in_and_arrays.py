"""Reading Parquet a row group at a time, and numeric columns as numpy without copies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from amlpkg.batch.arrays import to_arrow, to_numpy
from amlpkg.batch.parquet_in import parquet_batches, read_rows

ROW_BYTES = 48 * 1024  # a 3x64x64 float32 image


def _images(path: Path, rows: int, group: int) -> None:
    rng = np.random.default_rng(0)
    raw = [rng.standard_normal(ROW_BYTES // 4).astype(np.float32).tobytes() for _ in range(rows)]
    table = pa.table({"id": np.arange(rows), "image": pa.array(raw, pa.binary())})
    pq.write_table(table, path, row_group_size=group, use_dictionary=["id"])


def test_memory_stays_at_a_few_batches_and_every_row_comes_once(tmp_path: Path) -> None:
    path = tmp_path / "images.parquet"
    _images(path, 512, 32)  # 24 MiB in 16 row groups of 1.5 MiB
    pool = pa.default_memory_pool()
    before, peak, ids = pool.bytes_allocated(), 0, []
    for batch in parquet_batches(path, 4, columns=["id", "image"], read_bytes=32 * ROW_BYTES):
        peak = max(peak, pool.bytes_allocated() - before)
        ids += to_numpy(batch.column("id")).tolist()
    assert ids == list(range(512))
    # pyarrow's pre-buffering reader keeps every value read until the end (24 MiB)
    assert peak < 6 * 32 * ROW_BYTES, f"{peak} bytes held while reading"


def test_batches_read_are_whole_multiples_of_the_models_up_to_a_size(tmp_path: Path) -> None:
    path = tmp_path / "images.parquet"
    _images(path, 96, 32)
    meta = pq.ParquetFile(path).metadata
    assert read_rows(meta, 4) == 84  # 4 MiB: 85 rows of 48 KiB and a little
    assert read_rows(meta, 4, max_bytes=9 * ROW_BYTES) == 8
    assert read_rows(meta, 16, max_bytes=9 * ROW_BYTES) == 16  # never below the model's
    sizes = [b.num_rows for b in parquet_batches(path, 5, row_groups=[2, 0])]
    assert sizes == [64]  # across row groups, in the order asked for
    small = [b.num_rows for b in parquet_batches(path, 10, columns=["id"])]
    assert small == [80, 16]  # the read size counts every column's bytes
    first = next(parquet_batches(path, 5, row_groups=[2], columns=["id"]))
    assert first.schema.names == ["id"] and first.column("id")[0].as_py() == 64
    assert list(parquet_batches(path, 5, row_groups=[])) == []


def test_numeric_columns_are_views_both_ways_and_slices_keep_their_offset() -> None:
    values = np.arange(10, dtype=np.float32)
    column = to_arrow(values)
    assert column.type == pa.float32()
    assert column.buffers()[1].address == values.ctypes.data  # no copy
    view = to_numpy(column.slice(3, 4))
    assert view.tolist() == [3.0, 4.0, 5.0, 6.0]
    assert np.shares_memory(view, values)
    assert to_arrow(np.arange(6)[::2]).to_pylist() == [0, 2, 4]  # strided: made contiguous
    assert to_arrow(np.array(["a", "b"], dtype=object)).to_pylist() == ["a", "b"]
    assert to_numpy(pa.array([True, False])).tolist() == [True, False]  # bits: pyarrow's way


def test_scoring_a_batch_of_numbers_never_imports_pandas() -> None:
    # pyarrow imports pandas on its first pa.array(ndarray) / to_numpy(): a few tenths of a
    # CPU second in every fresh Spark Python worker, which otherwise never needs it.
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, pyarrow as pa
        from amlpkg.batch.arrays import to_arrow
        from amlpkg.batch.kernel import score_batch, session_for
        from amlpkg.batch.plan import TensorInfo, make_plan
        from tests.batch.test_plan_and_kernel import DIGEST, MODEL, OUTS, X

        raw = to_arrow(np.arange(24, dtype=np.float32))
        img = pa.ListArray.from_arrays(to_arrow(np.arange(0, 25, 4, dtype=np.int32)), raw)
        batch = pa.RecordBatch.from_arrays([to_arrow(np.arange(6)), img], names=["id", "img"])
        plan = make_plan("m:1", DIGEST, [X], OUTS, batch.schema, inputs={"x": "img"})
        out = score_batch(session_for(DIGEST, lambda: MODEL), plan, batch, 4)
        print(out.num_rows, "pandas" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
        cwd=Path(__file__).parents[2],  # the checkout: `tests` imports from there
    )  # fmt: skip
    assert done.stdout.split() == ["6", "False"]
