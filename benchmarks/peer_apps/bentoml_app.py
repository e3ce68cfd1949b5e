"""A BentoML 1.4 service for one ONNX model: ``POST /predict {"input": [sample batch]}``.

BentoML has no V2 protocol, so it takes its own JSON: ``input`` is the nested list
of a batch (here always one sample). Its adaptive batching (``batchable=True``)
concatenates requests along the first dim; the answer is the output as a list.
The model path comes from ``BENCH_MODEL_PATH`` (BentoML builds the class itself).
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
from ort_session import make_session

MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "1000"))


# One worker, as the other servers; no per-request access log (ours logs none either).
@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class OrtService:
    """One ONNX Runtime session behind a batchable ``predict`` endpoint."""

    def __init__(self) -> None:
        self._session = make_session(os.environ["BENCH_MODEL_PATH"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, input: np.ndarray) -> np.ndarray:  # the tensor's name
        """Run one (batched) array through the session."""
        (result,) = self._session.run(None, {"input": input.astype(np.float32, copy=False)})
        return result
