"""A PyTriton server for one ONNX model: Triton's C++ HTTP/gRPC frontend and batcher,
with the model's Python callable running ONNX Runtime.
"""

from __future__ import annotations

import argparse

import numpy as np
from ort_session import make_session
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig


def main() -> None:
    """Parse the command line, bind the model and serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--sample-shape", required=True, help="e.g. 3,64,64")
    parser.add_argument("--output-dim", type=int, default=10)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--delay-us", type=int, default=500)
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.sample_shape.split(","))
    session = make_session(args.model_path)

    @batch
    def infer(input: np.ndarray) -> dict[str, np.ndarray]:  # the tensor's name
        (result,) = session.run(None, {"input": input})
        return {"output": result}

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        allow_gpu_metrics=False,
        log_verbose=0,
    )
    # PyTriton restricts the statistics API by default (token header); perf_analyzer reads
    # it, and ours serves it open, so open it here too (127.0.0.1 only).
    security = TritonSecurityConfig(restricted_endpoints=[])
    with Triton(config=config, security_config=security) as triton:
        triton.bind(
            model_name=args.model_name,
            infer_func=infer,
            inputs=[Tensor(name="input", dtype=np.float32, shape=shape)],
            outputs=[Tensor(name="output", dtype=np.float32, shape=(args.output_dim,))],
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.delay_us),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
