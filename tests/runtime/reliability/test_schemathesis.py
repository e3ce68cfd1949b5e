"""Schemathesis fuzzes the REST API from the Open Inference Protocol spec: 0 answers 5xx.

The spec (vendored beside this file) spells model paths as ``/v2/models/${MODEL_NAME}``,
so its generated paths name models that do not exist; every generated infer body is
therefore also sent to real models, so the decoders and the models see it too.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.runtime.conftest import ServerProcess

pytestmark = pytest.mark.slow
SPEC = Path(__file__).with_name("open_inference_rest.yaml")
REAL_MODELS = ("identity_fp32", "identity_bytes", "add_sub", "mlp")
# Bounded so the whole test takes well under a minute on 2 cores.
EXAMPLES_PER_OPERATION = 40


def _operations() -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_path(SPEC)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_from_the_spec_gets_a_5xx(server: ServerProcess, mode: GenerationMode) -> None:
    failures: list[str] = []
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for operation in _operations():

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=server.base_url, timeout=30)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
                if case.method.upper() == "POST" and case.path.endswith("/infer"):
                    body = case.body if isinstance(case.body, dict | list) else None
                    for model in REAL_MODELS:
                        answer = client.post(f"/v2/models/{model}/infer", json=body)
                        if answer.status_code >= 500:
                            failures.append(f"{model}: {answer.status_code} for {body!r:.200}")

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): negative mode has no case.
                assert mode is GenerationMode.NEGATIVE
    assert not failures, failures[:10]
    assert httpx.get(f"{server.base_url}/v2/health/live", timeout=10).status_code == 200
