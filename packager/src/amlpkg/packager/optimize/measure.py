"""Measuring a model on this machine: load time, latency, throughput and accuracy.

Timing is bounded (a time budget and an iteration cap per batch size) and runs
with ONNX Runtime's spin-waiting off, as the runtime serves (spinning threads
burn the cores the server and its clients share). Only the provider a variant
is meant for is timed: a GPU target on a machine without that provider is
reported as not measured, never with CPU numbers.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.optimize.data import Sample

DEFAULT_BATCH_SIZES = (1, 8, 32)


class ProviderUnavailable(FailedPreconditionError):
    """The execution provider to measure on cannot run on this machine."""


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers usable in this process."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def open_session(path: Path, provider: str = "CPUExecutionProvider") -> tuple[Any, float]:
    """An inference session on ``provider`` as the runtime makes it; and its load time (ms)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors reach us as exceptions; no stderr noise
    started = time.perf_counter()
    try:
        # A provider ONNX Runtime lacks is a Python warning, then a CPU session:
        # the check below turns that into a clear error instead.
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            session = ort.InferenceSession(str(path), options, providers=[provider])
    except Exception as exc:  # onnxruntime's Fail/NotImplemented/InvalidGraph
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidArgumentError(
            f"ONNX Runtime cannot load {path.name} on {provider}: {first}"
        ) from exc
    elapsed = (time.perf_counter() - started) * 1000.0
    if provider not in session.get_providers():
        # A listed provider whose device or driver is missing falls back to the CPU
        # with only a log line: numbers from that session would be CPU numbers.
        raise ProviderUnavailable(
            f"{provider} is installed but did not initialize here (ONNX Runtime fell back to"
            f" {', '.join(session.get_providers())})",
            hint="check the GPU driver, CUDA/cuDNN or TensorRT libraries, or the OpenVINO runtime",
        )
    return session, elapsed


def run_sample(session: Any, sample: Sample, chunk: int) -> dict[str, np.ndarray]:
    """Every output of ``session`` on the whole sample, ``chunk`` rows per run."""
    names = [o.name for o in session.get_outputs()]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, sample.rows, chunk):
        try:
            values = session.run(names, sample.take(start, min(start + chunk, sample.rows)))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidArgumentError(f"ONNX Runtime failed on the sample: {first}") from exc
        for name, value in zip(names, values, strict=True):
            parts[name].append(np.asarray(value))
    return {n: np.concatenate(p) if p[0].ndim else p[0] for n, p in parts.items()}


def _run_for(
    session: Any, names: list[str], feed: dict[str, Any], until: float, cap: int
) -> list[float]:
    """Latencies (ms) of runs until ``until`` (at least one run, at most ``cap``)."""
    latencies: list[float] = []
    while len(latencies) < cap and (not latencies or time.perf_counter() < until):
        started = time.perf_counter()
        session.run(names, feed)
        latencies.append((time.perf_counter() - started) * 1000.0)
    return latencies


def time_interleaved(
    sessions: dict[str, Any],
    sample: Sample,
    batch_sizes: tuple[int, ...],
    *,
    budget_s: float = 0.25,
    rounds: int = 5,
    max_iterations: int = 200,
) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p90 latency (ms) and throughput (samples/s) per session and batch size.

    The sessions take turns in ``rounds`` short slices (``budget_s`` per session
    and batch size in all), so a burst of load from other processes on a shared
    machine hits every candidate alike instead of flattering whichever ran in a
    quiet moment. Each (session, batch) is warmed up first and runs at most
    ``max_iterations`` times.
    """
    feeds = {batch: sample.take(0, batch) for batch in batch_sizes}
    names = {key: [o.name for o in s.get_outputs()] for key, s in sessions.items()}
    for key, session in sessions.items():
        for feed in feeds.values():
            for _ in range(3):  # first runs allocate buffers and pick kernels
                session.run(names[key], feed)
    latencies: dict[tuple[str, int], list[float]] = {
        (key, batch): [] for key in sessions for batch in batch_sizes
    }
    cap = max(1, max_iterations // rounds)
    for _ in range(rounds):
        for key, session in sessions.items():
            for batch, feed in feeds.items():
                until = time.perf_counter() + budget_s / rounds
                latencies[key, batch] += _run_for(session, names[key], feed, until, cap)
    results: dict[str, dict[str, dict[str, float]]] = {key: {} for key in sessions}
    for (key, batch), values in latencies.items():
        values.sort()
        p50 = statistics.median(values)
        results[key][str(batch)] = {
            "p50_ms": round(p50, 4),
            "p90_ms": round(values[int(0.9 * (len(values) - 1))], 4),
            "throughput_per_s": round(batch * 1000.0 / p50, 1) if p50 > 0 else math.inf,
            "iterations": len(values),
        }
    return results


def speedup(baseline: dict[str, dict[str, float]], variant: dict[str, dict[str, float]]) -> float:
    """Geometric mean over batch sizes of baseline p50 / variant p50 (>1: variant faster)."""
    ratios = [
        baseline[b]["p50_ms"] / variant[b]["p50_ms"]
        for b in baseline
        if b in variant and variant[b]["p50_ms"] > 0 and baseline[b]["p50_ms"] > 0
    ]
    if not ratios:
        return 1.0
    return float(math.exp(sum(math.log(r) for r in ratios) / len(ratios)))


def predictions(outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """The predicted labels: a 1-D non-float output, else the argmax of a 2-D float output."""
    for value in outputs.values():
        if value.ndim == 1 and not np.issubdtype(value.dtype, np.floating):
            return value
    for value in outputs.values():
        if value.ndim == 2 and value.shape[1] > 1 and np.issubdtype(value.dtype, np.floating):
            return np.argmax(value, axis=1)
    return None


def compare(
    reference: dict[str, np.ndarray], got: dict[str, np.ndarray], labels: np.ndarray | None
) -> dict[str, Any]:
    """Errors of ``got`` against ``reference`` per output, overall, and the task metric.

    ``max_rel_error`` is relative to the output's largest magnitude (elementwise
    relative error explodes near zero). ``agreement`` is the fraction of samples
    whose predicted label (label output, or argmax of scores) matches.
    """
    per_output: dict[str, dict[str, float]] = {}
    max_abs = 0.0
    max_rel = 0.0
    scale = 0.0
    for name, ref in reference.items():
        value = got[name]
        if value.shape != ref.shape:
            raise InvalidArgumentError(
                f"output {name!r} changed shape from {list(ref.shape)} to {list(value.shape)}"
            )
        if np.issubdtype(ref.dtype, np.floating):
            ref64, val64 = ref.astype(np.float64), value.astype(np.float64)
            magnitude = float(np.max(np.abs(ref64))) if ref64.size else 0.0
            error = float(np.max(np.abs(ref64 - val64))) if ref64.size else 0.0
            if not math.isfinite(error):
                error = math.inf
            rel = error / magnitude if magnitude > 0 else (0.0 if error == 0 else math.inf)
            per_output[name] = {"max_abs_error": error, "max_rel_error": rel}
            max_abs, max_rel, scale = max(max_abs, error), max(max_rel, rel), max(scale, magnitude)
        else:
            same = float(np.mean(ref == value)) if ref.size else 1.0
            per_output[name] = {"equal_fraction": same}
    result: dict[str, Any] = {
        "outputs": per_output,
        "max_abs_error": max_abs,
        "max_rel_error": max_rel,
        "output_scale": scale,
    }
    ref_pred, got_pred = predictions(reference), predictions(got)
    if ref_pred is not None and got_pred is not None:
        result["agreement"] = float(np.mean(ref_pred == got_pred))
        if labels is not None:
            result["task_metric"] = "accuracy"
            result["accuracy_original"] = float(np.mean(ref_pred == labels))
            result["accuracy"] = float(np.mean(got_pred == labels))
    return result
