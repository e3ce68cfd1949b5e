"""The per-model ``config.yaml`` of the repository: schema, defaults and loading.

``<repo>/<model>/config.yaml`` is optional; without it a model serves with the
defaults below (no batching, CPU, the latest version). Unknown keys are rejected
so a typo never silently turns a feature off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from amlpkg.runtime.datatypes import BY_V2
from amlpkg.runtime.errors import ModelLoadError
from amlpkg.validation import describe_validation_error

CONFIG_FILE = "config.yaml"

ProviderName = Literal["tensorrt", "cuda", "openvino", "cpu"]
OptionValue = str | int | float | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class DynamicBatching(_Frozen):
    """Server-side batching of concurrent requests into one ONNX Runtime run."""

    max_queue_delay_microseconds: int = Field(default=0, ge=0)
    """How long the first request of a batch may wait for others to join it.

    0 (Triton's default) still batches under load: requests that queue while every
    instance is busy run together. The event loop's timers have about 1 ms resolution.
    """

    preferred_batch_size: tuple[int, ...] = ()
    """Batch sizes (samples) dispatched at once, without waiting for the delay."""

    max_queue_size: int = Field(default=1024, ge=1)
    """Requests that may wait in the queue; more are refused (503 / UNAVAILABLE)."""

    idle_runs_at_once: bool = True
    """A request that finds the model idle (nothing queued, no batch running) runs at
    once instead of waiting the delay for company that is not coming. ``false`` waits
    the whole delay every time, as Triton does."""


class ExecutionProvider(_Frozen):
    """One entry of the ordered provider fallback list."""

    name: ProviderName
    """``tensorrt``, ``cuda``, ``openvino`` or ``cpu``."""

    options: dict[str, OptionValue] = Field(default_factory=dict)
    """ONNX Runtime provider options, e.g. ``device_id`` or ``trt_fp16_enable``."""


class TensorOverride(_Frozen):
    """Pins the dims (Triton's ``dims``: without the batch dim when batching) of a tensor."""

    dims: tuple[int, ...] | None = None
    """Dims to report and enforce; ``-1`` keeps a dim dynamic."""

    datatype: str | None = None
    """Expected V2 datatype; must equal the model's own (a check, not a conversion)."""

    format: Literal["FORMAT_NONE", "FORMAT_NCHW", "FORMAT_NHWC"] | None = None
    """Triton's image layout of an input (``FORMAT_NCHW``/``FORMAT_NHWC``), reported in the
    model config so Triton's image clients know how to lay out pixels."""

    @model_validator(mode="after")
    def _known_datatype(self) -> TensorOverride:
        if self.datatype is not None and self.datatype not in BY_V2:
            raise ValueError(f"unknown datatype {self.datatype!r}; use one of {', '.join(BY_V2)}")
        return self


class VersionPolicy(_Frozen):
    """Which versions of ``<repo>/<model>/<N>/`` load: exactly one of the three."""

    latest: int | None = Field(default=None, ge=1)
    """The N highest versions."""

    all: bool | None = None
    """Every version (``all: true``)."""

    specific: tuple[int, ...] | None = None
    """Exactly these versions."""

    @model_validator(mode="after")
    def _exactly_one(self) -> VersionPolicy:
        chosen = [k for k in ("latest", "all", "specific") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"give only one of latest/all/specific, not {chosen}")
        if self.all is False:
            raise ValueError("all: false selects nothing; use latest or specific")
        return self

    def select(self, available: list[int]) -> list[int]:
        """The versions to load among ``available``, ascending."""
        ordered = sorted(available)
        if self.all:
            return ordered
        if self.specific is not None:
            return [v for v in ordered if v in self.specific]
        return ordered[-(self.latest or 1) :]

    def to_triton(self) -> dict[str, Any]:
        """Triton's ``ModelVersionPolicy`` in proto-JSON form."""
        if self.all:
            return {"all": {}}
        if self.specific is not None:
            return {"specific": {"versions": list(self.specific)}}
        return {"latest": {"num_versions": self.latest or 1}}


class ModelConfig(_Frozen):
    """Serving settings of one model (every version of it)."""

    max_batch_size: int = Field(default=0, ge=0)
    """Most samples (first dim) per run; 0 = the model is served without a batch dim."""

    dynamic_batching: DynamicBatching | None = None
    """Batch concurrent requests; absent = each request runs alone."""

    instance_count: int = Field(default=1, ge=1)
    """Runs (or batches) that may execute concurrently on one session."""

    execution_providers: tuple[ExecutionProvider, ...] = (ExecutionProvider(name="cpu"),)
    """Ordered fallback list; CPU is always appended last by ONNX Runtime."""

    on_provider_fallback: Literal["fail", "warn"] = "fail"
    """A requested GPU provider missing at load: fail the load, or warn and serve."""

    intra_op_threads: int = Field(default=0, ge=0)
    """ONNX Runtime threads inside one operator; 0 = the CPUs this process may use,
    divided between the ``instance_count`` runs that may execute at once."""

    inter_op_threads: int = Field(default=0, ge=0)
    """ONNX Runtime threads across operators; 0 = ONNX Runtime's default."""

    allow_spinning: bool = False
    """Let ONNX Runtime threads spin-wait; off because it burns the cores servers need."""

    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    """ONNX Runtime graph optimizations."""

    inputs: dict[str, TensorOverride] = Field(default_factory=dict)
    """Per-input overrides by name."""

    outputs: dict[str, TensorOverride] = Field(default_factory=dict)
    """Per-output overrides by name."""

    version_policy: VersionPolicy = VersionPolicy(latest=1)
    """Which versions load; default the latest one."""

    @model_validator(mode="after")
    def _batching_needs_batch_dim(self) -> ModelConfig:
        if self.dynamic_batching is not None and self.max_batch_size == 0:
            raise ValueError("dynamic_batching needs max_batch_size > 0")
        for size in self.dynamic_batching.preferred_batch_size if self.dynamic_batching else ():
            if not 1 <= size <= self.max_batch_size:
                raise ValueError(
                    f"preferred_batch_size {size} is outside 1..max_batch_size "
                    f"({self.max_batch_size})"
                )
        return self


def parse_model_config(data: Any, source: str) -> ModelConfig:
    """Validate a mapping as a :class:`ModelConfig`; errors name ``source`` and the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelLoadError(f"{source}: the model config must be a mapping of keys")
    try:
        return ModelConfig.model_validate(data)
    except RecursionError:
        raise ModelLoadError(f"{source}: the model config is nested too deeply") from None
    except ValidationError as exc:
        raise ModelLoadError(
            f"{source}: invalid model config: {describe_validation_error(exc)}",
            hint="see the ModelConfig fields in amlpkg.runtime.model_config",
        ) from None


def load_model_config(model_dir: Path) -> ModelConfig:
    """Read ``<model_dir>/config.yaml`` (defaults when the file is absent)."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return ModelConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, RecursionError) as exc:
        raise ModelLoadError(f"{path}: cannot read the model config: {exc}") from None
    return parse_model_config(data, str(path))
