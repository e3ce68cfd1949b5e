"""A LitServe server for one ONNX model: ``POST /predict {"input": [floats of one sample]}``.

LitServe has no V2 protocol, so it takes its own JSON: the flat sample, reshaped
here to the model's per-sample shape. Batching is LitServe's (``max_batch_size``,
``batch_timeout``); the answer is ``{"output": [floats]}``.
"""

from __future__ import annotations

import argparse

import litserve as ls
import numpy as np
from ort_session import make_session


class OrtApi(ls.LitAPI):
    """Decode a sample, batch with numpy, run ONNX Runtime, encode the row back."""

    def __init__(self, model_path: str, sample_shape: tuple[int, ...], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._path = model_path
        self._shape = sample_shape

    def setup(self, device: str) -> None:
        """Create the session in the inference worker."""
        self._session = make_session(self._path)

    def decode_request(self, request: dict[str, list[float]]) -> np.ndarray:
        """The request's flat list as one float32 sample."""
        return np.asarray(request["input"], dtype=np.float32).reshape(self._shape)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Stack samples into one batch."""
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run one batch (or one sample when batching is off)."""
        single = x.ndim == len(self._shape)
        batch = x[None] if single else x
        (result,) = self._session.run(None, {"input": batch})
        return result[0] if single else result

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        """Split the batch answer into rows."""
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict[str, list[float]]:
        """One row as JSON."""
        return {"output": output.tolist()}


def main() -> None:
    """Parse the command line and serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--sample-shape", required=True, help="e.g. 3,64,64")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout", type=float, default=0.0005)
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.sample_shape.split(","))
    api = OrtApi(
        args.model_path,
        shape,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
    )
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
