"""Before a server is measured, one request per protocol must come back with the right numbers.

A fast wrong answer is not a result: each (server, protocol) first gets the exact
body the load generator will replay, and its output is compared with in-process
ONNX Runtime on the same input.
"""

from __future__ import annotations

import grpc
import httpx
import numpy as np

from benchmarks.grpc_load import INFER_METHOD
from benchmarks.payloads import Payload, decode_grpc, decode_http


class WrongAnswerError(RuntimeError):
    """The server answered, but not with what in-process ONNX Runtime computes."""


def check_answer(
    payload: Payload, expected: np.ndarray, http_base: str | None, grpc_target: str | None
) -> None:
    """Send ``payload`` once; raise unless the output equals ``expected`` (float tolerance)."""
    if payload.is_grpc:
        if grpc_target is None:
            raise WrongAnswerError("no gRPC endpoint")
        with grpc.insecure_channel(grpc_target) as channel:
            call = channel.unary_unary(INFER_METHOD)
            try:
                body = call(payload.body, timeout=30)
            except grpc.RpcError as exc:
                raise WrongAnswerError(f"gRPC error {exc.code().name}: {exc.details()}") from None
        got = decode_grpc(body)
    else:
        if http_base is None:
            raise WrongAnswerError("no HTTP endpoint")
        response = httpx.post(
            http_base + payload.path, content=payload.body, headers=payload.headers, timeout=30
        )
        if response.status_code != 200:
            raise WrongAnswerError(f"HTTP {response.status_code}: {response.text[:300]}")
        got = decode_http(payload.wire, response.content, dict(response.headers))
    want = np.asarray(expected, dtype=np.float32).ravel()
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise WrongAnswerError(
            f"output differs from in-process ONNX Runtime (got {got[:4]}..., want {want[:4]}...)"
        )
