"""Triton's per-model statistics (``ModelStatisticsResponse``), kept on the event loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlpkg.runtime.batching.types import BatchRecord

_PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass(slots=True)
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += max(0, ns)

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class _BatchStats:
    compute_input: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    compute_output: _Duration = field(default_factory=_Duration)


class ModelStats:
    """Counters of one model version with Triton's meaning of each field."""

    def __init__(self) -> None:
        self.last_inference_ms = 0
        self.inference_count = 0  # samples that succeeded
        self.execution_count = 0  # ONNX Runtime runs (batches)
        self._phases = {name: _Duration() for name in _PHASES}
        self._batches: dict[int, _BatchStats] = {}

    def record_batch(self, record: BatchRecord) -> None:
        """One ONNX Runtime run of ``record.batch_size`` samples finished."""
        self.execution_count += 1
        stats = self._batches.setdefault(record.batch_size, _BatchStats())
        stats.compute_input.add(record.compute_input_ns)
        stats.compute_infer.add(record.compute_infer_ns)
        stats.compute_output.add(record.compute_output_ns)

    def record_success(
        self, samples: int, total_ns: int, queue_ns: int, record: BatchRecord, end_ns: int
    ) -> None:
        """One request succeeded; its compute phases are those of its batch."""
        self.inference_count += samples
        self.last_inference_ms = end_ns // 1_000_000
        self._phases["success"].add(total_ns)
        self._phases["queue"].add(queue_ns)
        self._phases["compute_input"].add(record.compute_input_ns)
        self._phases["compute_infer"].add(record.compute_infer_ns)
        self._phases["compute_output"].add(record.compute_output_ns)

    def record_failure(self, total_ns: int, end_ns: int) -> None:
        """One request failed after it was accepted for this model version."""
        self.last_inference_ms = end_ns // 1_000_000
        self._phases["fail"].add(total_ns)

    def to_dict(self, name: str, version: str) -> dict[str, Any]:
        """This version's entry of ``model_stats`` in proto-JSON form."""
        zero = _Duration().to_dict()
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                **{k: v.to_dict() for k, v in self._phases.items()},
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": b.compute_input.to_dict(),
                    "compute_infer": b.compute_infer.to_dict(),
                    "compute_output": b.compute_output.to_dict(),
                }
                for size, b in sorted(self._batches.items())
            ],
        }
