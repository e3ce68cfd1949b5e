"""The driver's side of a model: resolve a reference, read its bytes, make the plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from amlpkg.batch.kernel import session_for
from amlpkg.batch.plan import InputsSpec, OutputsSpec, ScorePlan, TensorInfo, make_plan
from amlpkg.errors import PayloadTooLargeError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, resolve_model_file

# Spark broadcasts the bytes and ONNX Runtime keeps a copy: past this, ship it another way.
MAX_MODEL_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ResolvedModel:
    """A registered version, its verified bytes and its inputs and outputs."""

    ref: str  # NAME:VERSION
    digest: str
    data: bytes
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def plan(
        self,
        schema: pa.Schema,
        inputs: InputsSpec = None,
        outputs: OutputsSpec = None,
        keep: Sequence[str] | None = None,
    ) -> ScorePlan:
        """The scoring plan of a table with ``schema``; raises if it does not fit."""
        return make_plan(
            self.ref, self.digest, self.inputs, self.outputs, schema,
            inputs=inputs, outputs=outputs, keep=keep,
        )  # fmt: skip


def _infos(nodes: Sequence[object]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo.from_node(n) for n in nodes)


def resolve_model(
    ref: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> ResolvedModel:
    """The model ``ref`` (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``) ready to score.

    Its bytes are read once here and checked against the registry's sha256; the
    session made from them is the one the local engine scores with (same cache).
    """
    version, path = resolve_model_file(ref, home=home, workspace=workspace)
    check_size(version)
    return model_of(version, path.read_bytes())


def check_size(version: ModelVersion) -> None:
    """Refuse a version too large to ship to the scoring engines (before reading it)."""
    if version.size > MAX_MODEL_BYTES:
        raise PayloadTooLargeError(
            f"{version.ref} is {version.size} bytes; batch scoring ships models up to"
            f" {MAX_MODEL_BYTES} bytes",
            hint="optimize or quantize it first (amlpkg optimize)",
        )


def model_of(version: ModelVersion, data: bytes) -> ResolvedModel:
    """``version`` ready to score from its file's bytes ``data`` (already checked)."""
    session = session_for(version.sha256, lambda: data, threads=0)
    return ResolvedModel(
        version.ref,
        version.sha256,
        data,
        _infos(session.get_inputs()),
        _infos(session.get_outputs()),
    )
