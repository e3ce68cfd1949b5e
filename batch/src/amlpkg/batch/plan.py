"""How a table's columns feed a model and where its outputs go: the scoring plan.

A plan is made once, on the driver, from the model's inputs and outputs (as ONNX
Runtime reports them) and the table's Arrow schema. It is a small frozen value, so
it travels to Spark executors inside the mapped function and every batch is scored
by the same rules on every engine:

* an input is fed either by several scalar columns (the feature matrix, one column
  per feature, in the order given) or by one list/array column whose rows are
  reshaped to the input's per-row shape (image-like inputs such as ``3x64x64``), or
  by one binary column holding each row's tensor as raw bytes (C order, the input's
  dtype, little-endian): the fastest way through Spark, which moves a binary value
  as one block but an array element by element;
* an output of per-row shape ``()`` becomes a scalar column, any other shape a list
  column of the flattened row, appended after the table's own columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from amlpkg.datatypes import from_onnx
from amlpkg.errors import InvalidArgumentError

InputsSpec = Mapping[str, str | Sequence[str]] | Sequence[str] | None
OutputsSpec = Mapping[str, str] | Sequence[str] | None


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, ONNX type string and shape (None: dynamic)."""

    name: str
    onnx_type: str
    shape: tuple[int | None, ...]

    @classmethod
    def from_node(cls, node: Any) -> TensorInfo:
        """From an ``onnxruntime.NodeArg``: symbolic or missing dimensions become None."""
        dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or []))
        return cls(node.name, node.type, dims)

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the tensor's elements."""
        return from_onnx(self.onnx_type).numpy


@dataclass(frozen=True)
class InputBinding:
    """Columns feeding one model input."""

    tensor: str
    columns: tuple[str, ...]
    dtype: str
    sample_shape: tuple[int, ...]  # per-row shape; -1 where the row's length decides
    from_array: bool  # one list column reshaped, rather than scalar feature columns


@dataclass(frozen=True)
class OutputBinding:
    """One model output and the column it is appended as."""

    tensor: str
    column: str
    arrow_type: pa.DataType
    is_list: bool


@dataclass(frozen=True)
class ScorePlan:
    """Everything an engine needs to score a batch, except the model's bytes."""

    model: str  # NAME:VERSION, for messages
    digest: str  # sha256 of the ONNX file: the session cache key and the integrity check
    inputs: tuple[InputBinding, ...]
    outputs: tuple[OutputBinding, ...]
    keep: tuple[str, ...] | None = None  # the table's columns passed through; None: all

    def kept_names(self, schema: pa.Schema) -> list[str]:
        """The table's columns that go through to the output, in the table's order."""
        return (
            list(schema.names) if self.keep is None else [n for n in schema.names if n in self.keep]
        )

    def read_names(self, schema: pa.Schema) -> list[str]:
        """The columns worth reading: those kept and those the inputs take, in order."""
        wanted = set(self.kept_names(schema)) | {c for b in self.inputs for c in b.columns}
        return [n for n in schema.names if n in wanted]

    def output_fields(self) -> list[pa.Field]:
        """The fields appended to each batch, in order."""
        return [pa.field(o.column, o.arrow_type) for o in self.outputs]

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The kept columns of ``schema`` with the model's output columns appended."""
        kept = [schema.field(n) for n in self.kept_names(schema)]
        return pa.schema([*kept, *self.output_fields()])


def _numeric(field: pa.Field) -> bool:
    kind = field.type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _listlike(field: pa.Field) -> bool:
    """An array column, or a binary one holding each row's tensor as raw bytes."""
    kind = field.type
    return (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _default_columns(info: TensorInfo, schema: pa.Schema) -> tuple[str, ...]:
    if info.name in schema.names:
        return (info.name,)
    numeric = tuple(f.name for f in schema if _numeric(f))
    width = info.shape[1] if len(info.shape) == 2 else None
    if width is not None and len(numeric) == width:
        return numeric
    raise InvalidArgumentError(
        f"cannot tell which columns feed input {info.name!r} (shape {list(info.shape)})",
        hint=f"name them: inputs={{{info.name!r}: ['col1', 'col2', ...]}} or an array column"
        f" (the table has {', '.join(schema.names[:20])})",
    )


def _bind_input(info: TensorInfo, columns: tuple[str, ...], schema: pa.Schema) -> InputBinding:
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InvalidArgumentError(
            f"input {info.name!r}: no column {missing[0]!r} in the table",
            hint=f"the table has {', '.join(schema.names[:20])}",
        )
    if not info.shape:
        raise InvalidArgumentError(f"input {info.name!r} has no batch dimension (a scalar)")
    fields = [schema.field(c) for c in columns]
    if len(fields) == 1 and _listlike(fields[0]):
        sample = tuple(-1 if d is None else d for d in info.shape[1:])
        if sample.count(-1) > 1:
            raise InvalidArgumentError(
                f"input {info.name!r} has several dynamic dimensions {list(info.shape)}:"
                " an array column cannot say how to reshape a row",
                hint="export the model with fixed per-row dimensions",
            )
        return InputBinding(info.name, columns, info.dtype.str, sample, from_array=True)
    for field in fields:
        if not _numeric(field):
            raise InvalidArgumentError(
                f"input {info.name!r}: column {field.name!r} is {field.type}, not numeric",
                hint="feed numeric feature columns, or one array column for the whole input",
            )
    if len(info.shape) != 2 or info.shape[1] not in (None, len(columns)):
        raise InvalidArgumentError(
            f"input {info.name!r} has shape {list(info.shape)}, but {len(columns)} feature"
            " columns make a matrix of shape [N, {len(columns)}]",
            hint="give as many columns as the input's second dimension, or one array column",
        )
    return InputBinding(info.name, columns, info.dtype.str, (len(columns),), from_array=False)


def _input_columns(
    infos: Sequence[TensorInfo], inputs: InputsSpec, schema: pa.Schema
) -> dict[str, tuple[str, ...]]:
    if inputs is None:
        return {i.name: _default_columns(i, schema) for i in infos}
    if isinstance(inputs, Mapping):
        chosen = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in inputs.items()}
    else:
        if len(infos) != 1:
            raise InvalidArgumentError(
                "a list of columns feeds a model with one input; this one has"
                f" {len(infos)} ({', '.join(i.name for i in infos)})",
                hint="map each input to its columns: inputs={'name': [...], ...}",
            )
        chosen = {infos[0].name: (inputs,) if isinstance(inputs, str) else tuple(inputs)}
    names = {i.name for i in infos}
    if set(chosen) != names:
        raise InvalidArgumentError(
            f"inputs name {sorted(chosen)}, the model's inputs are {sorted(names)}",
            hint="map every model input, and only those, to columns",
        )
    return chosen


def _output_columns(infos: Sequence[TensorInfo], outputs: OutputsSpec) -> dict[str, str]:
    names = [o.name for o in infos]
    if outputs is None:
        return {n: n for n in names}
    chosen = dict(outputs) if isinstance(outputs, Mapping) else {n: n for n in outputs}
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise InvalidArgumentError(
            f"the model has no output {unknown[0]!r}", hint=f"its outputs: {', '.join(names)}"
        )
    return chosen


def _bind_output(info: TensorInfo, column: str) -> OutputBinding:
    element = pa.from_numpy_dtype(info.dtype) if info.dtype.kind != "O" else pa.string()
    if len(info.shape) == 1:
        return OutputBinding(info.name, column, element, is_list=False)
    return OutputBinding(info.name, column, pa.list_(element), is_list=True)


def make_plan(
    model: str,
    digest: str,
    model_inputs: Sequence[TensorInfo],
    model_outputs: Sequence[TensorInfo],
    schema: pa.Schema,
    *,
    inputs: InputsSpec = None,
    outputs: OutputsSpec = None,
    keep: Sequence[str] | None = None,
) -> ScorePlan:
    """Check the mapping of ``schema`` to the model and return the plan, or say what's wrong.

    ``keep``: the table's columns to pass through (an id, say); None keeps them all.
    Image-like inputs are large: not passing them back saves a copy each way.
    """
    unknown = [k for k in keep or () if k not in schema.names]
    if unknown:
        raise InvalidArgumentError(
            f"keep names {unknown[0]!r}, which is not a column of the table",
            hint=f"the table has {', '.join(schema.names[:20])}",
        )
    columns = _input_columns(model_inputs, inputs, schema)
    bound_inputs = tuple(_bind_input(i, columns[i.name], schema) for i in model_inputs)
    targets = _output_columns(model_outputs, outputs)
    by_name = {o.name: o for o in model_outputs}
    bound_outputs = tuple(_bind_output(by_name[n], c) for n, c in targets.items())
    for out in bound_outputs:
        if by_name[out.tensor].shape == ():
            raise InvalidArgumentError(f"output {out.tensor!r} has no batch dimension")
        if out.column in (schema.names if keep is None else keep):
            raise InvalidArgumentError(
                f"output {out.tensor!r} would overwrite the table's column {out.column!r}",
                hint=f"rename it: outputs={{{out.tensor!r}: 'new_name'}}",
            )
    if len({o.column for o in bound_outputs}) != len(bound_outputs):
        raise InvalidArgumentError("two outputs are mapped to one column")
    kept = None if keep is None else tuple(keep)
    return ScorePlan(model, digest, bound_inputs, bound_outputs, kept)
