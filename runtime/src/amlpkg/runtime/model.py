"""One loaded model version: its session, worker threads, scheduler, statistics and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from amlpkg.runtime.batching import BatchRecord, DirectScheduler, DynamicBatcher, Scheduler
from amlpkg.runtime.metrics import RuntimeMetrics
from amlpkg.runtime.model_config import ModelConfig
from amlpkg.runtime.session import OnnxSession, TensorInfo
from amlpkg.runtime.signing import Verified
from amlpkg.runtime.stats import ModelStats
from amlpkg.runtime.types import TensorSpec

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
_GPU_PROVIDERS = {"cuda", "tensorrt"}


class LoadedModel:
    """A model version that can infer; built off the event loop, used on it."""

    def __init__(
        self,
        *,
        name: str,
        version: int,
        path: Path,
        config: ModelConfig,
        session: OnnxSession,
        metrics: RuntimeMetrics,
    ) -> None:
        self.name = name
        self.version = version
        self.version_str = str(version)
        self.path = path
        self.config = config
        self.session = session
        self.stats = ModelStats()
        self._metrics = metrics
        self.metrics = metrics.for_version(name, self.version_str)
        # ORT's run is thread-safe: instance_count threads share one session.
        self._executor = ThreadPoolExecutor(
            max_workers=config.instance_count, thread_name_prefix=f"ort-{name}-{version}"
        )
        self.scheduler: Scheduler
        batching = config.dynamic_batching
        if batching is not None:
            self.scheduler = DynamicBatcher(
                session.run,
                self._executor,
                self._on_batch,
                max_batch_size=config.max_batch_size,
                max_queue_delay_s=batching.max_queue_delay_microseconds / 1e6,
                preferred_batch_sizes=batching.preferred_batch_size,
                max_queue_size=batching.max_queue_size,
                idle_runs_at_once=batching.idle_runs_at_once,
                instances=config.instance_count,
                name=f"{name}/{version}",
            )
        else:
            self.scheduler = DirectScheduler(session.run, self._executor, self._on_batch)
        self.verified: Verified | None = None
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        metrics.set_providers(
            name, self.version_str, session.provider_short_names, session.provider_fallback
        )

    def set_verified(self, verified: Verified) -> None:
        """Record the signature this version was verified against (metadata, metrics)."""
        self.verified = verified
        self._metrics.set_signature(self.name, self.version_str, verified.digest, verified.signer)

    def _on_batch(self, record: BatchRecord) -> None:
        self.stats.record_batch(record)
        self.metrics.batch_size.observe(record.batch_size)

    def begin(self) -> None:
        """A request for this version was accepted."""
        self.in_flight += 1
        self._idle.clear()
        self.metrics.in_flight.inc()

    def end(self) -> None:
        """A request for this version was answered (or failed)."""
        self.in_flight -= 1
        self.metrics.in_flight.dec()
        if self.in_flight == 0:
            self._idle.set()

    async def close(self, drain_timeout_s: float) -> None:
        """Wait (bounded) for in-flight requests, then release the scheduler and session."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain_timeout_s)
        await self.scheduler.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._metrics.forget_providers(
            self.name, self.version_str, self.session.provider_short_names
        )
        if self.verified is not None:
            self._metrics.forget_signature(
                self.name, self.version_str, self.verified.digest, self.verified.signer
            )

    @property
    def parameters(self) -> dict[str, Any]:
        """Model metadata parameters: the providers it really got and whether it fell back."""
        signed = self.verified.parameters() if self.verified is not None else {}
        return {
            "execution_providers": self.session.provider_short_names,
            "provider_fallback": self.session.provider_fallback,
            **signed,
        }

    @staticmethod
    def _spec(info: TensorInfo) -> TensorSpec:
        return TensorSpec(info.name, info.datatype.v2, info.shape)

    def input_specs(self) -> tuple[TensorSpec, ...]:
        """Inputs as model metadata reports them (full shape, ``-1`` dynamic)."""
        return tuple(self._spec(i) for i in self.session.inputs.values())

    def output_specs(self) -> tuple[TensorSpec, ...]:
        """Outputs as model metadata reports them."""
        return tuple(self._spec(o) for o in self.session.outputs.values())

    def triton_config(self) -> dict[str, Any]:
        """Triton's ``ModelConfig`` (proto-JSON) with Triton's dims semantics."""
        cfg = self.config
        skip = 1 if cfg.max_batch_size > 0 else 0  # the batch dim is implicit in Triton

        def tensors(specs: dict[str, TensorInfo], is_input: bool) -> list[dict[str, Any]]:
            out = []
            for t in specs.values():
                entry: dict[str, Any] = {
                    "name": t.name,
                    "data_type": t.datatype.triton,
                    "dims": list(t.shape[skip:]),
                }
                if is_input:
                    override = cfg.inputs.get(t.name)
                    entry["format"] = (override.format if override else None) or "FORMAT_NONE"
                out.append(entry)
            return out

        on_gpu = bool(_GPU_PROVIDERS & set(self.session.provider_short_names))
        config: dict[str, Any] = {
            "name": self.name,
            "platform": PLATFORM,
            "backend": BACKEND,
            "version_policy": cfg.version_policy.to_triton(),
            "max_batch_size": cfg.max_batch_size,
            "input": tensors(self.session.inputs, True),
            "output": tensors(self.session.outputs, False),
            "instance_group": [
                {
                    "name": f"{self.name}_0",
                    "kind": "KIND_GPU" if on_gpu else "KIND_CPU",
                    "count": cfg.instance_count,
                }
            ],
        }
        if cfg.dynamic_batching is not None:
            db = cfg.dynamic_batching
            config["dynamic_batching"] = {
                "preferred_batch_size": list(db.preferred_batch_size),
                "max_queue_delay_microseconds": db.max_queue_delay_microseconds,
                "default_queue_policy": {"max_queue_size": db.max_queue_size},
            }
        accelerators = _accelerators(cfg)
        if accelerators:
            config["optimization"] = {"execution_accelerators": accelerators}
        return config


def _accelerators(cfg: ModelConfig) -> dict[str, Any]:
    gpu: list[dict[str, Any]] = []
    cpu: list[dict[str, Any]] = []
    for provider in cfg.execution_providers:
        entry = {
            "name": provider.name,
            "parameters": {k: str(v) for k, v in provider.options.items()},
        }
        if provider.name == "tensorrt":  # CUDA is a device (instance_group), not an accelerator
            gpu.append(entry)
        elif provider.name == "openvino":
            cpu.append(entry)
    result: dict[str, Any] = {}
    if gpu:
        result["gpu_execution_accelerator"] = gpu
    if cpu:
        result["cpu_execution_accelerator"] = cpu
    return result
