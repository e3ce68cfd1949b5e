"""Request bodies for every wire format the benchmarks send, and their answer checks.

Bodies are built once per (server, protocol, model) and replayed by the load
generators, so the clients spend no time encoding. Each format also has a decoder
used before a measurement to check the server answers the right numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from benchmarks.models import INPUT_NAME, OUTPUT_NAME


class Wire(StrEnum):
    """How a request is encoded; the table shows it next to each row."""

    V2_JSON = "v2-json"
    V2_BINARY = "v2-binary"
    LITSERVE_JSON = "litserve-json"
    BENTOML_JSON = "bentoml-json"
    GRPC_RAW = "grpc-raw"
    GRPC_TYPED = "grpc-typed"


@dataclass(frozen=True)
class Payload:
    """One ready-to-send request: HTTP path + headers + body, or a gRPC message."""

    wire: Wire
    body: bytes
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_grpc(self) -> bool:
        """Whether this goes over gRPC (else HTTP POST)."""
        return self.wire in (Wire.GRPC_RAW, Wire.GRPC_TYPED)


def build_payload(wire: Wire, model: str, sample: np.ndarray) -> Payload:
    """Encode ``sample`` (a float32 batch) for ``model`` in the ``wire`` format."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    infer_path = f"/v2/models/{model}/infer"
    json_headers = {"Content-Type": "application/json"}
    if wire is Wire.V2_JSON:
        body = {
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": list(sample.shape),
                    "datatype": "FP32",
                    "data": sample.ravel().tolist(),
                }
            ]
        }
        return Payload(wire, json.dumps(body).encode(), infer_path, json_headers)
    if wire is Wire.V2_BINARY:
        raw = sample.tobytes()
        header = {
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": list(sample.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
        }
        head = json.dumps(header).encode()
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        }
        return Payload(wire, head + raw, infer_path, headers)
    if wire is Wire.LITSERVE_JSON:
        # LitServe has no V2 endpoint; our LitAPI takes one sample per request.
        body_ls = {"input": sample[0].ravel().tolist()}
        return Payload(wire, json.dumps(body_ls).encode(), "/predict", json_headers)
    if wire is Wire.BENTOML_JSON:
        # BentoML's own JSON: the nested batch under the parameter's name.
        body_bento = {"input": sample.tolist()}
        return Payload(wire, json.dumps(body_bento).encode(), "/predict", json_headers)
    return Payload(wire, _grpc_request(wire, model, sample))


def _grpc_request(wire: Wire, model: str, sample: np.ndarray) -> bytes:
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(sample.shape))
    if wire is Wire.GRPC_RAW:
        request.raw_input_contents.append(sample.tobytes())
    else:
        tensor.contents.fp32_contents.extend(sample.ravel().tolist())
    request.outputs.add(name=OUTPUT_NAME)
    return bytes(request.SerializeToString())


def decode_http(wire: Wire, body: bytes, headers: dict[str, str]) -> np.ndarray:
    """The output tensor of an HTTP answer, flattened to float32."""
    if wire is Wire.LITSERVE_JSON:
        return np.asarray(json.loads(body)["output"], dtype=np.float32).ravel()
    if wire is Wire.BENTOML_JSON:
        return np.asarray(json.loads(body), dtype=np.float32).ravel()
    header_len = headers.get("inference-header-content-length")
    if header_len is None:
        answer = json.loads(body)
        output = _named_output(answer["outputs"])
        return np.asarray(output["data"], dtype=np.float32).ravel()
    size = int(header_len)
    answer = json.loads(body[:size])
    offset = size
    for output in answer["outputs"]:
        length = int(output.get("parameters", {}).get("binary_data_size", 0))
        if output["name"] == OUTPUT_NAME:
            if not length:
                return np.asarray(output["data"], dtype=np.float32).ravel()
            return np.frombuffer(body[offset : offset + length], dtype=np.float32).copy()
        offset += length
    raise ValueError(f"answer has no output {OUTPUT_NAME!r}")


def decode_grpc(body: bytes) -> np.ndarray:
    """The output tensor of a serialized ``ModelInferResponse``, flattened to float32."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse.FromString(body)
    for index, output in enumerate(response.outputs):
        if output.name != OUTPUT_NAME:
            continue
        if len(response.raw_output_contents) > index:
            return np.frombuffer(response.raw_output_contents[index], dtype=np.float32).copy()
        return np.asarray(output.contents.fp32_contents, dtype=np.float32)
    raise ValueError(f"answer has no output {OUTPUT_NAME!r}")


def _named_output(outputs: list[dict[str, object]]) -> dict[str, object]:
    for output in outputs:
        if output.get("name") == OUTPUT_NAME:
            return output
    raise ValueError(f"answer has no output {OUTPUT_NAME!r}")
