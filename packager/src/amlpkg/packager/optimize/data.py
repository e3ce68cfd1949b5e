"""Validation and calibration samples: from an ``.npz`` file, a run, or synthetic.

An ``.npz`` holds one array per model input, named like the input, and
optionally ``y``: the labels, for a task metric. Arrays are checked against the
model's signature (names, rank, fixed dims, element kind) before anything runs,
so a bad file gets an error that says what to fix and nothing is stored.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.datatypes import BY_ONNX
from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion
from amlpkg.trainer.store import runs as store_runs

LABELS = "y"


@dataclass(frozen=True)
class Sample:
    """Inputs keyed by input name (all with the same first dim), optional labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    """Where it came from: a file path, ``run <id>:<artifact>`` or ``synthetic``."""
    synthetic: bool

    @property
    def rows(self) -> int:
        """How many samples (the first dim)."""
        return int(next(iter(self.inputs.values())).shape[0])

    def take(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of every input, cycling when the sample is shorter."""
        index = np.arange(start, stop) % self.rows
        return {name: array[index] for name, array in self.inputs.items()}


def input_dtype(spec: dict[str, Any]) -> Any:
    """The numpy dtype of a signature input, or a clear error for unsupported ones."""
    found = BY_ONNX.get(f"tensor({spec.get('elem_type')})")  # signature: "float", "int64"
    if found is None or found.v2 == "BYTES":
        raise InvalidArgumentError(
            f"input {spec['name']!r} has element type {spec.get('elem_type')!r},"
            " which amlpkg optimize cannot sample or quantize",
            hint="optimize models with numeric tensor inputs",
        )
    return found.numpy.type


def fixed_batch(signature: dict[str, Any]) -> int | None:
    """The first dim when every input fixes it to one number, else None (dynamic batch)."""
    firsts = {
        (spec.get("shape") or [None])[0] if spec.get("shape") else None
        for spec in signature["inputs"]
    }
    if len(firsts) == 1:
        first = firsts.pop()
        if isinstance(first, int) and first > 0:
            return first
    return None


SYNTHETIC_ROWS = 256
SYNTHETIC_BYTES = 64 * 1024 * 1024


def _row_shape(spec: dict[str, Any]) -> list[int]:
    shape = list(spec.get("shape") or [-1])
    return [d if isinstance(d, int) and d > 0 else 1 for d in shape[1:]]


def synthesize(signature: dict[str, Any], rows: int = SYNTHETIC_ROWS, seed: int = 0) -> Sample:
    """A synthetic sample: standard normal floats, small non-negative integers.

    Dynamic dims other than the batch are set to 1. At most ``rows`` samples and
    about 64 MiB (large image inputs get fewer rows), a whole number of batches
    for a fixed-batch model. Good enough to compare a variant with its original;
    say so wherever it is reported.
    """
    rng = np.random.default_rng(seed)
    row_bytes = sum(
        int(np.prod(_row_shape(spec))) * np.dtype(input_dtype(spec)).itemsize
        for spec in signature["inputs"]
    )
    rows = max(1, min(rows, SYNTHETIC_BYTES // max(1, row_bytes)))
    batch = fixed_batch(signature)
    if batch is not None:
        rows = max(batch, rows - rows % batch)
    inputs: dict[str, np.ndarray] = {}
    for spec in signature["inputs"]:
        dtype = input_dtype(spec)
        dims = [rows, *_row_shape(spec)]
        if np.issubdtype(dtype, np.floating):
            inputs[spec["name"]] = rng.standard_normal(dims).astype(dtype)
        elif dtype is np.bool_:
            inputs[spec["name"]] = rng.integers(0, 2, dims).astype(np.bool_)
        else:
            inputs[spec["name"]] = rng.integers(0, 10, dims).astype(dtype)
    return Sample(inputs, None, "synthetic", True)


def _check_array(name: str, array: np.ndarray, spec: dict[str, Any], shown: str) -> np.ndarray:
    dtype = input_dtype(spec)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise InvalidArgumentError(
            f"{shown}: array {name!r} has dtype {array.dtype}, not numeric",
            hint=f"save it as {np.dtype(dtype).name}",
        )
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise InvalidArgumentError(
            f"{shown}: array {name!r} has dtype {array.dtype}; the model wants"
            f" {np.dtype(dtype).name}",
            hint=f"convert it: array.astype(np.{np.dtype(dtype).name})",
        )
    shape = spec.get("shape")
    if shape is not None:
        if array.ndim != len(shape):
            raise InvalidArgumentError(
                f"{shown}: array {name!r} has shape {list(array.shape)}; the model's input"
                f" has shape {shape} (batch first)",
                hint="stack the samples along the first axis",
            )
        for axis, (want, got) in enumerate(zip(shape, array.shape, strict=True)):
            if axis > 0 and isinstance(want, int) and want > 0 and want != got:
                raise InvalidArgumentError(
                    f"{shown}: array {name!r} has {got} at axis {axis}, the model wants {want}",
                    hint=f"the model's input shape is {shape}",
                )
    return array.astype(dtype, copy=False)


def load_npz(path: Path, signature: dict[str, Any], *, role: str = "validation") -> Sample:
    """Read and check the sample at ``path`` against ``signature``.

    ``role`` (``validation`` or ``calibration``) names the file in messages.
    """
    shown = f"{role} file {path}"
    if not path.is_file():
        raise NotFoundError(f"{shown} does not exist", hint="check the path")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidArgumentError(
            f"{shown} is not a readable .npz file: {exc}",
            hint="write it with numpy.savez(path, **{input_name: array, 'y': labels})",
        ) from exc
    if not isinstance(arrays, dict) or not arrays:
        raise InvalidArgumentError(f"{shown} holds no arrays", hint="one array per model input")
    names = [spec["name"] for spec in signature["inputs"]]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InvalidArgumentError(
            f"{shown} lacks arrays for the model inputs {missing} (it has {sorted(arrays)})",
            hint=f"name one array per input: {', '.join(names)} (and optionally 'y' for labels)",
        )
    extra = sorted(set(arrays) - set(names) - {LABELS})
    if extra:
        raise InvalidArgumentError(
            f"{shown} has arrays {extra} that are not model inputs",
            hint=f"the inputs are {', '.join(names)}; labels go in 'y'",
        )
    inputs = {
        spec["name"]: _check_array(spec["name"], arrays[spec["name"]], spec, shown)
        for spec in signature["inputs"]
    }
    rows = {int(a.shape[0]) if a.ndim else 0 for a in inputs.values()}
    if len(rows) != 1 or 0 in rows:
        raise InvalidArgumentError(
            f"{shown}: the inputs must hold the same, non-zero number of samples, got {rows}",
            hint="every array's first axis is the sample axis",
        )
    labels = arrays.get(LABELS)
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != next(iter(rows))):
        raise InvalidArgumentError(
            f"{shown}: labels 'y' must be 1-D with one label per sample ({next(iter(rows))}),"
            f" got shape {list(labels.shape)}",
        )
    batch = fixed_batch(signature)
    if batch is not None and next(iter(rows)) % batch:
        raise InvalidArgumentError(
            f"{shown}: the model has a fixed batch of {batch}; {next(iter(rows))} samples"
            " do not split into whole batches",
            hint=f"give a multiple of {batch} samples",
        )
    return Sample(inputs, labels, str(path), False)


def sample_from_run(ws: Workspace, version: ModelVersion) -> Sample | None:
    """An ``.npz`` artifact of the version's run that fits the model, if any."""
    if version.run_id is None:
        return None
    for artifact in store_runs.list_artifacts(ws, version.run_id):
        if not str(artifact["path"]).endswith(".npz"):
            continue
        blob = ws.artifacts.verified_path(artifact["sha256"])
        try:
            sample = load_npz(blob, version.signature, role="calibration")
        except InvalidArgumentError:
            continue  # an .npz for something else
        return Sample(
            sample.inputs, sample.labels, f"run {version.run_id}:{artifact['path']}", False
        )
    return None
