"""Prometheus metrics of one data plane, on its own registry (never the global one).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set by the server before the
workers start), every worker writes its values to files there and any worker's
``/metrics`` answers the sum over all of them (prometheus_client's multiprocess mode):
gauges say how they combine (``multiprocess_mode``, ignored with one process).
"""

from __future__ import annotations

import contextlib
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LABELS = ("model", "version")
_SECONDS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH = tuple(float(2**i) for i in range(11))  # 1, 2, 4, ... 1024 samples


class VersionMetrics:
    """The label-bound metric children of one model version (looked up once, not per call)."""

    def __init__(self, metrics: RuntimeMetrics, model: str, version: str) -> None:
        self.success = metrics.requests.labels(model, version, "success")
        self.failure = metrics.requests.labels(model, version, "failure")
        self.queue = metrics.queue_seconds.labels(model, version)
        self.compute = metrics.compute_seconds.labels(model, version)
        self.batch_size = metrics.batch_size.labels(model, version)
        self.in_flight = metrics.in_flight.labels(model, version)


class RuntimeMetrics:
    """Request, latency, batching and provider metrics, labelled by model and version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "amlpkg_inference_requests",
            "Inference requests by outcome (success or failure).",
            (*_LABELS, "outcome"),
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "amlpkg_inference_queue_seconds",
            "Time a request waited before its batch ran.",
            _LABELS,
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.compute_seconds = Histogram(
            "amlpkg_inference_compute_seconds",
            "Time of the ONNX Runtime run (with input merge and output split) per request.",
            _LABELS,
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "amlpkg_inference_batch_size",
            "Samples per ONNX Runtime run: values above 1 show dynamic batching at work.",
            _LABELS,
            buckets=_BATCH,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "amlpkg_inference_in_flight",
            "Requests accepted and not yet answered.",
            _LABELS,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.provider = Gauge(
            "amlpkg_model_execution_provider",
            "1 for each execution provider a loaded model version really runs on.",
            (*_LABELS, "provider"),
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.provider_fallback = Gauge(
            "amlpkg_model_provider_fallback",
            "1 when a requested accelerator was missing and the model serves on a fallback.",
            _LABELS,
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.signature = Gauge(
            "amlpkg_model_signature",
            "1 for a loaded model version whose signature verified: its digest and signer.",
            (*_LABELS, "digest", "signer"),
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def exposition(self) -> CollectorRegistry:
        """What ``/metrics`` answers: this registry, or with worker processes the values
        of all of them."""
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return self.registry
        combined = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(combined, path=folder)
        return combined

    def for_version(self, model: str, version: str) -> VersionMetrics:
        """The metric children of one model version."""
        return VersionMetrics(self, model, version)

    def set_providers(self, model: str, version: str, providers: list[str], fallback: bool) -> None:
        """Record the providers a freshly loaded model version got."""
        for provider in providers:
            self.provider.labels(model, version, provider).set(1)
        self.provider_fallback.labels(model, version).set(1 if fallback else 0)

    def forget_providers(self, model: str, version: str, providers: list[str]) -> None:
        """Drop the provider series of an unloaded model version."""
        if os.environ.get(MULTIPROC_ENV):
            return  # worker processes never unload before exit; their files go with them
        for provider in providers:
            with contextlib.suppress(KeyError):
                self.provider.remove(model, version, provider)
        with contextlib.suppress(KeyError):
            self.provider_fallback.remove(model, version)

    def set_signature(self, model: str, version: str, digest: str, signer: str) -> None:
        """Record the verified digest and signer of a loaded model version."""
        self.signature.labels(model, version, digest, signer).set(1)

    def forget_signature(self, model: str, version: str, digest: str, signer: str) -> None:
        """Drop the signature series of an unloaded model version."""
        if os.environ.get(MULTIPROC_ENV):
            return
        with contextlib.suppress(KeyError):
            self.signature.remove(model, version, digest, signer)
