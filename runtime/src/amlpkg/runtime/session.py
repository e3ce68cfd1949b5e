"""One ONNX Runtime session built from a model config, with V2 tensor specs and BYTES handling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.runtime import cpus
from amlpkg.runtime.datatypes import BY_V2, Datatype, from_onnx
from amlpkg.runtime.errors import InvalidInputError, ModelLoadError, ModelRunError
from amlpkg.runtime.model_config import ModelConfig, TensorOverride
from amlpkg.runtime.providers import SHORT_NAME, check_fallback, select_providers

_OPT_LEVEL = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """A model tensor: V2 datatype and full shape (``-1`` for dynamic dims)."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]


def _shape(raw: Sequence[Any]) -> tuple[int, ...]:
    # Symbolic ("batch") and unknown (None) dims are dynamic.
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in raw)


def _apply_override(
    info: TensorInfo, override: TensorOverride | None, batched: bool, where: str
) -> TensorInfo:
    if override is None:
        return info
    if override.datatype is not None and BY_V2[override.datatype] != info.datatype:
        raise ModelLoadError(
            f"{where} {info.name!r}: config says datatype {override.datatype} but the model "
            f"has {info.datatype.v2}",
            hint="fix or remove the datatype override",
        )
    if override.dims is None:
        return info
    dims = ((-1,) if batched else ()) + override.dims
    if len(dims) != len(info.shape) or any(
        m not in (-1, d) for m, d in zip(info.shape, dims, strict=True)
    ):
        raise ModelLoadError(
            f"{where} {info.name!r}: config dims {list(override.dims)} do not fit the model "
            f"shape {list(info.shape)}" + (" (dims exclude the batch dim)" if batched else ""),
            hint="only dynamic (-1) dims can be pinned",
        )
    return TensorInfo(info.name, info.datatype, dims)


def available_cpus() -> int:
    """The CPUs this process's models share (see :mod:`amlpkg.runtime.cpus`)."""
    return cpus.budget()


def intra_op_threads(config: ModelConfig) -> int:
    """The configured intra-op threads, or by default the CPUs split between instances.

    ONNX Runtime's own default counts physical cores, which on virtual machines that
    report one thread per core is right, but which leaves a core idle where it
    undercounts; and ``instance_count`` sessions running at once with each taking
    every core would oversubscribe. Measured on 2 CPUs (benchmarks/RESULTS.md), an
    explicit split served the CNN over HTTP no slower than ONNX Runtime's choice.
    """
    if config.intra_op_threads > 0:
        return config.intra_op_threads
    return max(1, available_cpus() // config.instance_count)


class OnnxSession:
    """An ``InferenceSession`` plus what the server needs to know about it."""

    def __init__(self, path: Path, config: ModelConfig, model_name: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads(config)
        options.inter_op_num_threads = config.inter_op_threads
        spin = "1" if config.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVEL[config.graph_optimization_level]
        )
        available = ort.get_available_providers()
        plan = select_providers(config.execution_providers, available, path.parent)
        if not path.is_file():
            raise ModelLoadError(f"model {model_name!r}: {path} does not exist")
        try:
            self._session = ort.InferenceSession(
                str(path),
                sess_options=options,
                providers=[name for name, _ in plan.providers],
                provider_options=[opts for _, opts in plan.providers],
            )
        except Exception as exc:  # ORT raises its own pybind exception types
            raise ModelLoadError(
                f"model {model_name!r}: ONNX Runtime cannot load {path}: {exc}"
            ) from None
        self.providers: list[str] = list(self._session.get_providers())
        self.provider_fallback = check_fallback(
            model_name,
            config.execution_providers,
            self.providers,
            config.on_provider_fallback,
            available,
        )
        batched = config.max_batch_size > 0
        self.inputs = self._specs(self._session.get_inputs(), config.inputs, batched, "input")
        self.outputs = self._specs(self._session.get_outputs(), config.outputs, batched, "output")
        if batched:
            self._check_batch_dim(model_name)
        self._bytes_outputs = {n for n, t in self.outputs.items() if t.datatype.v2 == "BYTES"}

    @property
    def provider_short_names(self) -> list[str]:
        """The providers the session really runs on, as config names (``cuda``...)."""
        return [SHORT_NAME.get(p, p) for p in self.providers]

    @staticmethod
    def _specs(
        nodes: Sequence[Any], overrides: Mapping[str, TensorOverride], batched: bool, where: str
    ) -> dict[str, TensorInfo]:
        specs: dict[str, TensorInfo] = {}
        for node in nodes:
            try:
                datatype = from_onnx(node.type)
            except InvalidInputError as exc:
                raise ModelLoadError(f"{where} {node.name!r}: {exc.message}") from None
            info = TensorInfo(node.name, datatype, _shape(node.shape))
            specs[node.name] = _apply_override(info, overrides.get(node.name), batched, where)
        unknown = sorted(set(overrides) - set(specs))
        if unknown:
            raise ModelLoadError(
                f"config overrides {where}s {unknown} that the model does not have",
                hint=f"the model's {where}s are {sorted(specs)}",
            )
        return specs

    def _check_batch_dim(self, model_name: str) -> None:
        for info in (*self.inputs.values(), *self.outputs.values()):
            if not info.shape or info.shape[0] != -1:
                raise ModelLoadError(
                    f"model {model_name!r}: max_batch_size > 0 needs a dynamic first (batch) "
                    f"dim, but {info.name!r} has shape {list(info.shape)}",
                    hint="export the model with a dynamic batch axis, or set max_batch_size: 0",
                )

    def run(self, feeds: dict[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        """Run the session; BYTES inputs must be str already (:func:`to_onnx_strings`),
        BYTES outputs come back as bytes."""
        try:
            results = self._session.run(list(output_names), feeds)
        except Exception as exc:  # ORT raises its own pybind exception types
            raise ModelRunError(f"ONNX Runtime could not run the request: {exc}") from None
        out: list[np.ndarray] = []
        for name, value in zip(output_names, results, strict=True):
            array = np.asarray(value)
            if name in self._bytes_outputs:
                array = _to_bytes(array)
            out.append(array)
        return out


def to_onnx_strings(array: np.ndarray, where: str) -> np.ndarray:
    """BYTES elements (bytes) as the str objects an ONNX string tensor takes."""
    if array.dtype.kind == "U":
        return array
    try:
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.flat]
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"{where}: BYTES elements must be UTF-8 text for this model (ONNX strings)"
        ) from None
    return np.array(flat, dtype=object).reshape(array.shape)


def _to_bytes(array: np.ndarray) -> np.ndarray:
    flat = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.flat]
    return np.array(flat, dtype=object).reshape(array.shape)
