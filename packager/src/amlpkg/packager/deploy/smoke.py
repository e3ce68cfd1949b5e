"""Verify a deployment: wait for V2 readiness, then one inference built from the signature.

The request is made from the registered signature alone (dynamic dims become 1,
values are zeros), so any model can be smoke-tested without sample data. HTTP goes
through plain KServe v2 JSON; gRPC through the real ``tritonclient``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from amlpkg.datatypes import BY_V2
from amlpkg.errors import FailedPreconditionError, InvalidArgumentError


class SmokeTestError(FailedPreconditionError):
    """The deployment did not become ready or its smoke inference failed."""


def smoke_inputs(signature: dict[str, Any]) -> list[dict[str, Any]]:
    """V2 JSON inputs for one sample: dynamic dims become 1, every value zero (or "")."""
    inputs: list[dict[str, Any]] = []
    for spec in signature.get("inputs", []):
        datatype = spec.get("datatype")
        if datatype not in BY_V2 or spec.get("shape") is None:
            raise InvalidArgumentError(
                f"input {spec.get('name')!r} ({spec.get('elem_type')}) cannot be smoke-tested",
                hint="only tensor inputs with a known rank can be served over KServe v2",
            )
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        count = 1
        for dim in shape:
            count *= dim
        value: Any = "" if datatype == "BYTES" else (False if datatype == "BOOL" else 0)
        inputs.append(
            {"name": spec["name"], "shape": shape, "datatype": datatype, "data": [value] * count}
        )
    return inputs


def is_ready(http_url: str | None, timeout_s: float = 3.0) -> bool:
    """Whether ``/v2/health/ready`` answers 200 now (no endpoint or no answer: False)."""
    if not http_url:
        return False
    try:
        return httpx.get(f"{http_url}/v2/health/ready", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(
    http_url: str,
    *,
    timeout_s: float,
    alive: Callable[[], str | None] | None = None,
    poll_s: float = 0.2,
) -> None:
    """Poll ``/v2/health/ready`` until 200; ``alive`` returns a reason when the server died."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while True:
            if alive is not None:
                dead = alive()
                if dead is not None:
                    raise SmokeTestError(f"the server stopped before it was ready: {dead}")
            try:
                response = client.get(f"{http_url}/v2/health/ready")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise SmokeTestError(
                    f"{http_url} was not ready after {timeout_s:.0f}s (last: {last})",
                    hint="see the deployment's log; raise --ready-timeout for slow model loads",
                )
            time.sleep(poll_s)


def smoke_http(http_url: str, model: str, signature: dict[str, Any]) -> dict[str, Any]:
    """One V2 JSON inference on ``model``; returns the response (checked for every output)."""
    body = {"inputs": smoke_inputs(signature)}
    try:
        response = httpx.post(f"{http_url}/v2/models/{model}/infer", json=body, timeout=30.0)
    except httpx.HTTPError as exc:
        raise SmokeTestError(f"smoke inference on {http_url} failed: {exc}") from exc
    if response.status_code != 200:
        raise SmokeTestError(
            f"smoke inference on {http_url} answered HTTP {response.status_code}:"
            f" {response.text[:300]}"
        )
    result: dict[str, Any] = response.json()
    _check_outputs(signature, [o["name"] for o in result.get("outputs", [])], http_url)
    return result


def smoke_grpc(grpc_address: str, model: str, signature: dict[str, Any]) -> list[str]:
    """One inference over gRPC with ``tritonclient``; returns the output names received."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url=grpc_address)
    try:
        inputs = []
        for spec in smoke_inputs(signature):
            data = np.array(spec["data"], dtype=BY_V2[spec["datatype"]].numpy)
            tensor = grpcclient.InferInput(spec["name"], spec["shape"], spec["datatype"])
            tensor.set_data_from_numpy(data.reshape(spec["shape"]))
            inputs.append(tensor)
        result = client.infer(model, inputs, client_timeout=30.0)
        names = [o.name for o in result.get_response().outputs]
    except InferenceServerException as exc:
        raise SmokeTestError(f"gRPC smoke inference on {grpc_address} failed: {exc}") from exc
    finally:
        client.close()
    _check_outputs(signature, names, grpc_address)
    return names


def _check_outputs(signature: dict[str, Any], got: list[str], where: str) -> None:
    missing = [o["name"] for o in signature.get("outputs", []) if o["name"] not in got]
    if missing:
        raise SmokeTestError(f"smoke inference on {where} lacks outputs {missing}")
