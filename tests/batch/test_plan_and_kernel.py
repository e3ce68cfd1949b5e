"""Unit tests of the scoring plan and the batch function (no workspace, no Spark)."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pyarrow as pa
import pytest
from onnx import TensorProto, helper

from amlpkg.batch.kernel import score_batch, score_batches, session_for
from amlpkg.batch.plan import TensorInfo, make_plan
from amlpkg.errors import IntegrityError, InvalidArgumentError


def _doubler() -> bytes:
    """y = 2x over [N, 2, 2] float, and s = the row sums [N]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 2])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N"])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y, s], [two, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model.SerializeToString()


MODEL = _doubler()
DIGEST = hashlib.sha256(MODEL).hexdigest()
X = TensorInfo("x", "tensor(float)", (None, 2, 2))
OUTS = (TensorInfo("y", "tensor(float)", (None, 2, 2)), TensorInfo("s", "tensor(float)", (None,)))


def _images(n: int) -> pa.RecordBatch:
    values = np.arange(n * 4, dtype=np.float32)
    offsets = np.arange(0, n * 4 + 1, 4, dtype=np.int32)
    image = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    return pa.RecordBatch.from_arrays([pa.array(np.arange(n)), image], names=["id", "img"])


def test_an_array_column_is_reshaped_and_outputs_are_appended() -> None:
    batch = _images(5)
    plan = make_plan("m:1", DIGEST, [X], OUTS, batch.schema, inputs={"x": "img"})
    session = session_for(DIGEST, lambda: MODEL)
    out = score_batch(session, plan, batch)
    assert out.schema.names == ["id", "img", "y", "s"]
    assert out.column("y").to_pylist()[1] == [8.0, 10.0, 12.0, 14.0]
    assert out.column("s").to_pylist() == [6.0, 22.0, 38.0, 54.0, 70.0]
    runs = _Recording(session)
    sliced = list(score_batches(runs, plan, [batch], max_rows=2))
    assert runs.rows == [2, 2, 1]  # the model runs on slices of the batch ...
    assert [b.num_rows for b in sliced] == [5]  # ... converted and returned whole
    assert pa.Table.from_batches(sliced).column("s").to_pylist() == [6.0, 22.0, 38.0, 54.0, 70.0]
    assert sliced[0].column("y").to_pylist() == out.column("y").to_pylist()


class _Recording:
    """A real session that notes the rows of every run."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.rows: list[int] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.rows.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)  # type: ignore[attr-defined,no-any-return]


def test_feature_columns_make_the_matrix_of_a_two_dimensional_input() -> None:
    info = TensorInfo("X", "tensor(float)", (None, 3))
    schema = pa.schema([("id", pa.int64()), ("a", pa.float64()), ("b", pa.int32())])
    with pytest.raises(InvalidArgumentError, match="cannot tell which columns"):
        make_plan("m:1", "d", [info], [], pa.schema([("a", pa.float64())]))
    with pytest.raises(InvalidArgumentError, match="2 feature columns"):
        make_plan("m:1", "d", [info], [], schema, inputs=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="no column 'c'"):
        make_plan("m:1", "d", [info], [], schema, inputs=["a", "b", "c"])
    plan = make_plan("m:1", "d", [info], [], schema)  # three numeric columns: all of them
    assert plan.inputs[0].columns == ("id", "a", "b")


def test_outputs_can_be_chosen_and_renamed_but_never_overwrite_a_column() -> None:
    schema = _images(1).schema
    plan = make_plan("m:1", DIGEST, [X], OUTS, schema, inputs={"x": "img"}, outputs={"s": "total"})
    assert [f.name for f in plan.output_fields()] == ["total"]
    with pytest.raises(InvalidArgumentError, match="no output 'z'"):
        make_plan("m:1", DIGEST, [X], OUTS, schema, inputs={"x": "img"}, outputs=["z"])
    with pytest.raises(InvalidArgumentError, match="overwrite the table's column 'id'"):
        make_plan("m:1", DIGEST, [X], OUTS, schema, inputs={"x": "img"}, outputs={"s": "id"})


def test_rows_of_the_wrong_size_and_nulls_are_refused_with_a_hint() -> None:
    plan = make_plan("m:1", DIGEST, [X], OUTS, _images(1).schema, inputs={"x": "img"})
    session = session_for(DIGEST, lambda: MODEL)
    ragged = pa.RecordBatch.from_arrays(
        [pa.array([1, 2]), pa.array([[1.0] * 4, [1.0] * 3], pa.list_(pa.float32()))],
        names=["id", "img"],
    )
    with pytest.raises(InvalidArgumentError, match="lengths 3 to 4"):
        score_batch(session, plan, ragged)
    nulls = pa.RecordBatch.from_arrays(
        [pa.array([1]), pa.array([None], pa.list_(pa.float32()))], names=["id", "img"]
    )
    with pytest.raises(InvalidArgumentError, match="null rows"):
        score_batch(session, plan, nulls)


def test_model_bytes_that_do_not_match_the_digest_are_never_loaded() -> None:
    tampered = onnx.load_from_string(MODEL)
    tampered.doc_string = "changed"
    with pytest.raises(IntegrityError, match="expected"):
        session_for("0" * 64, tampered.SerializeToString)


def test_a_binary_column_of_raw_tensors_feeds_an_image_like_input() -> None:
    images = np.arange(3 * 4, dtype=np.float32).reshape(3, 2, 2)
    raw = pa.array([row.tobytes() for row in images], pa.binary())
    batch = pa.RecordBatch.from_arrays([pa.array([0, 1, 2]), raw], names=["id", "raw"])
    plan = make_plan("m:1", DIGEST, [X], OUTS, batch.schema, inputs={"x": "raw"}, keep=["id"])
    out = score_batch(session_for(DIGEST, lambda: MODEL), plan, batch.slice(1, 2))
    assert out.schema.names == ["id", "y", "s"]
    assert out.column("s").to_pylist() == [images[1].sum(), images[2].sum()]
    short = pa.RecordBatch.from_arrays(
        [pa.array([0]), pa.array([images[0].tobytes()[:12]], pa.binary())], names=["id", "raw"]
    )
    with pytest.raises(InvalidArgumentError, match="3 float32 values per row"):
        score_batch(session_for(DIGEST, lambda: MODEL), plan, short)
