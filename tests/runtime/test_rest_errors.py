"""Bad input over REST against a real server: status, and a message that says what to fix."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.runtime.conftest import MAX_REQUEST_SIZE, ServerProcess

pytestmark = pytest.mark.slow


def _tensor(
    name: str = "INPUT0", datatype: str = "FP32", shape: tuple[int, ...] = (1, 16)
) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(shape),
        "data": [1] * int(np.prod(shape)),
    }


def _post(
    server: ServerProcess, path: str, body: bytes | dict[str, Any], **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(server.base_url + path, content=content, headers=headers, timeout=30)


CASES = [
    (
        "unknown model",
        "/v2/models/nope/infer",
        {"inputs": [_tensor()]},
        404,
        "Request for unknown model: 'nope' is not found",
    ),
    (
        "unknown version",
        "/v2/models/add_sub/versions/9/infer",
        {"inputs": [_tensor(), _tensor("INPUT1")]},
        404,
        "version 9 is not found",
    ),
    (
        "unknown input",
        "/v2/models/add_sub/infer",
        {"inputs": [_tensor(), _tensor("INPUTX")]},
        400,
        "no input 'INPUTX'",
    ),
    (
        "wrong shape",
        "/v2/models/add_sub/infer",
        {"inputs": [_tensor(shape=(1, 15)), _tensor("INPUT1", shape=(1, 15))]},
        400,
        "expected shape [-1, 16]",
    ),
    (
        "wrong datatype",
        "/v2/models/add_sub/infer",
        {"inputs": [_tensor(datatype="INT32"), _tensor("INPUT1", datatype="INT32")]},
        400,
        "expected datatype FP32, got INT32",
    ),
    (
        "wrong element count",
        "/v2/models/add_sub/infer",
        {"inputs": [{**_tensor(), "data": [1, 2, 3]}, _tensor("INPUT1")]},
        400,
        "input 'INPUT0': 3 elements in 'data' but shape [1, 16] needs 16",
    ),
    (
        "unknown output",
        "/v2/models/add_sub/infer",
        {"inputs": [_tensor(), _tensor("INPUT1")], "outputs": [{"name": "NOPE"}]},
        400,
        "no output 'NOPE'",
    ),
    ("malformed JSON", "/v2/models/add_sub/infer", b'{"inputs": [', 400, "malformed request JSON"),
    ("unknown route", "/v2/nothing/here", {}, 404, "no route for POST /v2/nothing/here"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_requests_get_a_clear_error(
    server: ServerProcess, path: str, body: Any, status: int, message: str
) -> None:
    response = _post(server, path, body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


def test_bad_binary_header_length(server: ServerProcess) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    )
    body = header + np.ones(4, np.float32).tobytes()
    too_long = _post(
        server,
        "/v2/models/identity_fp32/infer",
        body,
        **{"Inference-Header-Content-Length": "9999"},
    )
    assert too_long.status_code == 400
    assert "Inference-Header-Content-Length is 9999 but the body has" in too_long.json()["error"]
    not_int = _post(
        server, "/v2/models/identity_fp32/infer", body, **{"Inference-Header-Content-Length": "x"}
    )
    assert not_int.status_code == 400 and "is not an integer" in not_int.json()["error"]
    short = _post(
        server,
        "/v2/models/identity_fp32/infer",
        body[:-4],
        **{"Inference-Header-Content-Length": str(len(header))},
    )
    assert (
        short.status_code == 400
        and "binary_data_size is 16 but only 12 bytes" in short.json()["error"]
    )
    good = _post(
        server,
        "/v2/models/identity_fp32/infer",
        body,
        **{"Inference-Header-Content-Length": str(len(header))},
    )
    assert good.status_code == 200 and good.json()["outputs"][0]["data"] == [1, 1, 1, 1]


def test_payload_over_the_limit_is_413(server: ServerProcess) -> None:
    response = _post(server, "/v2/models/identity_fp32/infer", b" " * (MAX_REQUEST_SIZE + 1))
    assert response.status_code == 413
    assert f"over the limit of {MAX_REQUEST_SIZE} bytes" in response.json()["error"]

    def chunks() -> Any:  # no Content-Length: the streaming count must catch it
        for _ in range(MAX_REQUEST_SIZE // 65536 + 2):
            yield b" " * 65536

    streamed = httpx.post(
        server.base_url + "/v2/models/identity_fp32/infer", content=chunks(), timeout=30
    )
    assert streamed.status_code == 413


def test_wrong_method_and_health_bodies(server: ServerProcess) -> None:
    response = httpx.get(server.base_url + "/v2/models/add_sub/infer")
    assert response.status_code == 405 and "takes POST" in response.json()["error"]
    assert httpx.get(server.base_url + "/v2/health/live").status_code == 200
    assert httpx.get(server.base_url + "/v2/models/no_such/ready").status_code == 400


def test_full_queue_is_503(server: ServerProcess) -> None:
    def request(n: int) -> httpx.Response:
        return _post(server, "/v2/models/tiny_queue/infer", {"inputs": [_tensor(shape=(1, n))]})

    results: dict[int, httpx.Response] = {}
    threads = []
    # n=1 waits in a batch for the queue delay, n=2 (another shape) waits in the queue
    # of size 1, so n=3 finds the queue full.
    for n in (1, 2):
        thread = threading.Thread(target=lambda n=n: results.__setitem__(n, request(n)))
        thread.start()
        threads.append(thread)
        time.sleep(0.3)
    refused = request(3)
    for thread in threads:
        thread.join(30)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["error"]
    assert results[1].status_code == 200 and results[2].status_code == 200


def test_metrics_endpoint(server: ServerProcess) -> None:
    _post(server, "/v2/models/add_sub/infer", {"inputs": [_tensor(), _tensor("INPUT1")]})
    response = httpx.get(server.base_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'amlpkg_inference_requests_total{model="add_sub",outcome="success",version="1"}'
        in response.text
    )
