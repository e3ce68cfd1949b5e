"""The ONNX Runtime session every peer app uses: the same options as our server.

Spin-waiting off (it burns the cores the server and its clients share), thread
counts left to ONNX Runtime, all graph optimizations on. Imported by the peer
apps inside their own virtualenvs, so it depends on onnxruntime only.
"""

from __future__ import annotations

import onnxruntime as ort


def make_session(model_path: str) -> ort.InferenceSession:
    """A CPU session for ``model_path`` with spin-waiting off."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
