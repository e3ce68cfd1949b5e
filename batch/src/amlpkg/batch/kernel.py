"""The batch function: one Arrow record batch in, the same batch plus outputs out.

This is the code that runs where the data is: in the local engine's process and in
every Spark executor's Python worker. It needs numpy, pyarrow and ONNX Runtime, not
the workspace. Sessions are cached per process, keyed by the model's sha256, so a
Python worker that Spark reuses across tasks builds its session once; the model's
bytes are asked for only on a cache miss and verified against that digest first.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from amlpkg.batch.arrays import to_arrow, to_numpy
from amlpkg.batch.plan import InputBinding, ScorePlan
from amlpkg.errors import IntegrityError, InvalidArgumentError

_SESSIONS: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def session_for(digest: str, fetch: Callable[[], bytes], threads: int = 1) -> Any:
    """The cached ONNX Runtime session of the model ``digest``, made on first use.

    ``fetch`` returns the model's bytes (a broadcast value, a file); they are checked
    against ``digest`` before ONNX Runtime reads them. ``threads``: intra-op threads
    (Spark gives each task one core; 0 lets ONNX Runtime use every core).
    """
    key = (digest, threads)
    with _LOCK:
        found = _SESSIONS.get(key)
        if found is not None:
            return found
        data = fetch()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"the model's bytes have sha256 {actual[:12]}..., expected {digest[:12]}...",
                hint="the model was changed or damaged on its way; score it again",
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Spin-waiting burns the cores the other tasks (and Spark's JVM) need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        _SESSIONS[key] = session
        return session


def _feature_matrix(batch: pa.RecordBatch, binding: InputBinding) -> np.ndarray:
    out = np.empty((batch.num_rows, len(binding.columns)), dtype=np.dtype(binding.dtype))
    for j, name in enumerate(binding.columns):
        column = batch.column(name)
        if column.null_count:
            raise InvalidArgumentError(
                f"column {name!r} has {column.null_count} null values in a batch",
                hint="drop or fill the nulls before scoring",
            )
        out[:, j] = to_numpy(column)
    return out


def _raw_tensor(column: pa.Array, binding: InputBinding, rows: int) -> np.ndarray:
    """Rows of raw bytes (one tensor each) as one array, without copying when aligned."""
    dtype = np.dtype(binding.dtype)
    offsets = np.frombuffer(
        column.buffers()[1],
        dtype=np.int64 if pa.types.is_large_binary(column.type) else np.int32,
    )[column.offset : column.offset + rows + 1]
    lengths = np.diff(offsets)
    if rows and lengths.min() != lengths.max():
        raise InvalidArgumentError(
            f"column {binding.columns[0]!r} has values of {lengths.min()} to {lengths.max()} bytes",
            hint=f"every row must hold one {binding.tensor!r} tensor of the same size",
        )
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    if data.size % dtype.itemsize:
        raise InvalidArgumentError(
            f"column {binding.columns[0]!r}: {data.size} bytes are not {dtype} values"
        )
    flat = data.view(dtype) if data.ctypes.data % dtype.alignment == 0 else data.copy().view(dtype)
    hint = "store each row's tensor flattened in C order, e.g. array.tobytes()"
    return _per_row(flat, rows, binding, f"{dtype} values", hint)


def _per_row(
    flat: np.ndarray, rows: int, binding: InputBinding, what: str, hint: str
) -> np.ndarray:
    """``flat`` as ``rows`` samples of the input's per-row shape; else a 400 saying so."""
    try:
        return flat.reshape((rows, *binding.sample_shape))
    except ValueError:
        raise InvalidArgumentError(
            f"column {binding.columns[0]!r}: {flat.size // max(rows, 1)} {what} per row do not"
            f" fit input {binding.tensor!r} of per-row shape {list(binding.sample_shape)}",
            hint=hint,
        ) from None


def _array_tensor(batch: pa.RecordBatch, binding: InputBinding) -> np.ndarray:
    name = binding.columns[0]
    column = batch.column(name)
    if column.null_count:
        raise InvalidArgumentError(
            f"column {name!r} has {column.null_count} null rows", hint="drop them before scoring"
        )
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return _raw_tensor(column, binding, batch.num_rows)
    values = column.flatten()  # honours the batch's slice offsets
    if values.null_count:
        raise InvalidArgumentError(f"column {name!r} has null elements inside its arrays")
    n = batch.num_rows
    if not pa.types.is_fixed_size_list(column.type) and n:
        lengths = np.diff(to_numpy(column.offsets))
        if lengths.min() != lengths.max():
            raise InvalidArgumentError(
                f"column {name!r} has arrays of lengths {lengths.min()} to {lengths.max()}",
                hint=f"every row must hold one {binding.tensor!r} input of the same size",
            )
    flat = to_numpy(values).astype(np.dtype(binding.dtype), copy=False)
    hint = "store each row flattened in C order (e.g. channels, height, width)"
    return _per_row(flat, n, binding, "values", hint)


def _to_arrow(value: np.ndarray, rows: int, tensor: str, is_list: bool) -> pa.Array:
    if value.shape[:1] != (rows,):
        raise InvalidArgumentError(
            f"output {tensor!r} has {value.shape[:1]} rows for a batch of {rows}",
            hint="the model must keep the batch dimension first in every output",
        )
    if not is_list:
        return to_arrow(value.reshape(rows))
    flat = value.reshape(rows, -1)
    offsets = np.arange(0, flat.size + 1, max(flat.shape[1], 1), dtype=np.int32)
    if flat.shape[1] == 0:
        offsets = np.zeros(rows + 1, dtype=np.int32)
    return pa.ListArray.from_arrays(to_arrow(offsets), to_arrow(flat.reshape(-1)))


def _run(session: Any, plan: ScorePlan, feeds: dict[str, np.ndarray], rows: int, step: int) -> list:
    """The model's outputs over ``rows`` rows of ``feeds``, run ``step`` rows at a time.

    Slices of the feeds are views (the batch dimension is the first), so converting a
    large batch once and running the model on slices of it costs no copy of the inputs.
    """
    names = [o.tensor for o in plan.outputs]
    if rows <= step:
        return list(session.run(names, feeds))
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for start in range(0, rows, step):
        chunk = {k: v[start : start + step] for k, v in feeds.items()}
        for i, result in enumerate(session.run(names, chunk)):
            value = np.asarray(result)
            expected = min(step, rows - start)
            if value.shape[:1] != (expected,):  # checked per run: a concatenation hides it
                raise InvalidArgumentError(
                    f"output {names[i]!r} has {value.shape[:1]} rows for a batch of {expected}",
                    hint="the model must keep the batch dimension first in every output",
                )
            parts[i].append(value)
    return [np.concatenate(p) for p in parts]


def score_batch(
    session: Any, plan: ScorePlan, batch: pa.RecordBatch, max_rows: int | None = None
) -> pa.RecordBatch:
    """``batch`` with the model's outputs appended as the plan's columns.

    ``max_rows``: the most rows the model is run on at once (None: the whole batch); the
    batch is converted once and the model runs on slices of it.
    """
    feeds = {
        b.tensor: _array_tensor(batch, b) if b.from_array else _feature_matrix(batch, b)
        for b in plan.inputs
    }
    rows = batch.num_rows
    values = _run(session, plan, feeds, rows, max_rows or rows) if rows else None
    columns = [batch.column(n) for n in plan.kept_names(batch.schema)]
    for i, out in enumerate(plan.outputs):
        if values is None:
            columns.append(pa.array([], type=out.arrow_type))
        else:
            columns.append(_to_arrow(np.asarray(values[i]), rows, out.tensor, out.is_list))
    schema = plan.output_schema(batch.schema)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def score_batches(
    session: Any, plan: ScorePlan, batches: Iterable[pa.RecordBatch], max_rows: int
) -> Iterator[pa.RecordBatch]:
    """Score each batch, running the model on at most ``max_rows`` rows at a time; one
    scored batch per batch read (the reader's batch may be larger than the model's)."""
    for batch in batches:
        yield score_batch(session, plan, batch, max_rows)
