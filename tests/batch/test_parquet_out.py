"""Scored batches as Parquet: row groups gathered from small batches, no dictionary for floats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from amlpkg.batch.parquet_out import ROW_GROUP_ROWS, ParquetOut, dictionary_columns


def _batch(start: int, rows: int) -> pa.RecordBatch:
    probs = np.arange(start * 3, (start + rows) * 3, dtype=np.float32) / 7
    offsets = pa.array(np.arange(0, rows * 3 + 1, 3, dtype=np.int32))
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.arange(start, start + rows)),
            pa.array(np.arange(start, start + rows) % 3),
            pa.ListArray.from_arrays(offsets, pa.array(probs)),
        ],
        names=["id", "label", "probabilities"],
    )


def test_floating_columns_and_their_lists_get_no_dictionary() -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("name", pa.string()), ("score", pa.float32()),
         ("probs", pa.list_(pa.float32())), ("tags", pa.list_(pa.string()))]
    )  # fmt: skip
    assert dictionary_columns(schema) == ["id", "name", "tags"]


def test_small_batches_become_few_row_groups_with_the_same_rows(tmp_path: Path) -> None:
    step, count = 10_000, 30
    out = ParquetOut(tmp_path / "o.parquet", _batch(0, 1).schema)
    for i in range(count):
        out.write(_batch(i * step, step))
    out.close()

    file = pq.ParquetFile(tmp_path / "o.parquet")
    rows = step * count
    groups = [file.metadata.row_group(i).num_rows for i in range(file.metadata.num_row_groups)]
    per_group = -(-ROW_GROUP_ROWS // step) * step  # whole batches until the bound is passed
    assert groups == [per_group, per_group, rows - 2 * per_group]
    table = file.read()
    assert np.array_equal(table.column("id").to_numpy(), np.arange(rows))
    expected = np.arange(rows * 3, dtype=np.float32) / 7
    got = np.concatenate(table.column("probabilities").to_numpy(zero_copy_only=False))
    assert np.array_equal(got, expected)
    chunks = {
        file.metadata.row_group(0).column(j).path_in_schema: file.metadata.row_group(0).column(j)
        for j in range(file.metadata.num_columns)
    }
    assert "RLE_DICTIONARY" in chunks["label"].encodings
    assert not any("DICTIONARY" in e for e in chunks["probabilities.list.element"].encodings)


def test_a_file_without_batches_is_valid_and_empty(tmp_path: Path) -> None:
    ParquetOut(tmp_path / "e.parquet", _batch(0, 1).schema).close()
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 0 and table.column_names == ["id", "label", "probabilities"]


def test_columns_passed_through_keep_the_inputs_codec_and_dictionary_choice(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    raw = [rng.standard_normal(48).astype(np.float32).tobytes() for _ in range(64)]
    source = pa.table(
        {"id": np.arange(64), "image": pa.array(raw, pa.binary()), "note": ["n"] * 64}
    )
    pq.write_table(
        source, tmp_path / "in.parquet", use_dictionary=["id", "note"],
        compression={"id": "snappy", "image": "none", "note": "zstd"},
    )  # fmt: skip
    like = pq.read_metadata(tmp_path / "in.parquet")
    scored = source.append_column("score", pa.array(np.ones(64, np.float32)))
    writer = ParquetOut(tmp_path / "out.parquet", scored.schema, like=like)
    writer.write(scored.to_batches()[0])
    writer.close()
    group = pq.read_metadata(tmp_path / "out.parquet").row_group(0)
    got = {
        group.column(i).path_in_schema: (
            group.column(i).compression,
            any("DICTIONARY" in e for e in group.column(i).encodings),
        )
        for i in range(group.num_columns)
    }
    assert got == {
        "id": ("SNAPPY", True),
        "image": ("UNCOMPRESSED", False),  # as stored: no codec, no dictionary of tensors
        "note": ("ZSTD", True),
        "score": ("SNAPPY", False),  # the model's outputs: our own rules
    }
    assert pq.read_table(tmp_path / "out.parquet").column("image").to_pylist() == raw
