"""A runtime's OTLP telemetry into a team server, with a token that no manifest holds in clear.

The OpenTelemetry SDK reads the standard ``OTEL_EXPORTER_OTLP_HEADERS`` (``name=value``
pairs, values URL-decoded: ``Authorization=Bearer%20TOKEN``) for its trace and metric
exporters; ``deploy --telemetry-token-file`` (local, docker) puts a token file's content
there, and ``--telemetry-token-secret NAME/KEY`` (kubernetes) has the pods read it from a
Secret. A real runtime process exports its traces and output summaries to a real server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.deploy import k8s_manifests as k8s
from amlpkg.packager.deploy.options import DockerOptions
from amlpkg.packager.deploy.otel import telemetry_env
from amlpkg.store.workspace import open_workspace
from tests.collector.test_telemetry_processes import _stop, _wait_ready
from tests.edge_agent.conftest import add_model
from tests.remote.conftest import TeamServer, amlpkg
from tests.remote.test_agent_image_remote import _upload_model
from tests.services import free_port

IMAGE = "127.0.0.1:5000/scorer@sha256:" + "ab" * 32
DEPLOYMENT = "shop:1"


def _infer(port: int, times: int) -> None:
    body = json.dumps(
        {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
    ).encode()
    for _ in range(times):
        url = f"http://127.0.0.1:{port}/v2/models/m/infer"
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()


@pytest.mark.slow
def test_runtime_exports_traces_and_summaries_into_the_server(
    team: TeamServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))
    token_file = tmp_path / "token"
    token_file.write_text(team.tokens["contributor"])
    env = {**os.environ, **telemetry_env(team.url, DEPLOYMENT, token_file=token_file)}
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == f"Authorization=Bearer%20{token_file.read_text()}"
    port = free_port()
    runtime = subprocess.Popen(
        [sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(repo),
         "--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", runtime)
        _infer(port, 4)
    finally:
        output = _stop(runtime)  # SIGTERM flushes both exporters
    assert runtime.returncode == 0, output
    assert team.tokens["contributor"] not in output
    shown = amlpkg("telemetry", "show", "--deployment", DEPLOYMENT, "--json",
                   env=team.env("reader"))  # fmt: skip
    [summary] = json.loads(shown.stdout)["deployments"]
    assert summary["requests"] == 4 and summary["models"] == ["m:1"]
    with open_workspace(team.home) as ws:
        outputs = ws.conn.execute(
            "SELECT COUNT(*) FROM telemetry WHERE deployment_id = ? AND message_id LIKE ?",
            (DEPLOYMENT, "otlp-metrics:%:outputs:%"),
        ).fetchone()[0]
    assert outputs >= 1  # the output summaries arrived too


def test_a_token_file_is_read_at_deploy_time_and_only_its_path_recorded(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("amlpkg_a+b/c\n")
    env = telemetry_env("http://team:8080/", DEPLOYMENT, token_file=token_file)
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "Authorization=Bearer%20amlpkg_a%2Bb%2Fc"
    # The path is kept, so a rollback (which redeploys from the record) reads it again.
    options = DockerOptions(
        telemetry_endpoint="http://team:8080", telemetry_token_file=str(token_file)
    )
    assert options.recorded() == {
        "telemetry_endpoint": "http://team:8080",
        "telemetry_token_file": str(token_file),
    }
    assert "amlpkg_a+b/c" not in str(options.recorded())
    token_file.write_text(" \n")
    with pytest.raises(InvalidArgumentError, match="--telemetry-token-file token is empty"):
        telemetry_env("http://team:8080", DEPLOYMENT, token_file=token_file)
    with pytest.raises(InvalidArgumentError, match="--telemetry URL"):
        telemetry_env(None, DEPLOYMENT, token_file=token_file)


def test_kubernetes_pods_read_the_token_from_a_secret() -> None:
    env = telemetry_env("http://team:8080", DEPLOYMENT)
    opts = k8s.K8sOptions(name="web", image=IMAGE, env=env, token_secret="amlpkg-telemetry/token")
    manifests = k8s.manifests(opts)
    for obj in manifests:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    [scoring] = manifests[0]["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in scoring["env"]]
    # $(VAR) expands only from entries listed before it.
    assert names.index("AMLPKG_TELEMETRY_TOKEN") < names.index("OTEL_EXPORTER_OTLP_HEADERS")
    by_name = {e["name"]: e for e in scoring["env"]}
    assert by_name["AMLPKG_TELEMETRY_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "amlpkg-telemetry", "key": "token"}
    }
    assert by_name["OTEL_EXPORTER_OTLP_HEADERS"]["value"] == (
        "Authorization=Bearer%20$(AMLPKG_TELEMETRY_TOKEN)"
    )
    with pytest.raises(InvalidArgumentError, match="is not NAME/KEY"):
        k8s.manifests(k8s.K8sOptions(name="web", image=IMAGE, env=env, token_secret="Bad Name"))
    with pytest.raises(InvalidArgumentError, match="--telemetry URL"):
        k8s.manifests(k8s.K8sOptions(name="web", image=IMAGE, token_secret="s/token"))


def test_deploy_dry_run_against_the_server_names_the_secret(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_model(team, tmp_path)
    done = amlpkg("deploy", "scorer:1", "-t", "kubernetes", "-n", "web", "--image", IMAGE,
                  "--telemetry", team.url, "--telemetry-token-secret", "team-telemetry/token",
                  "--dry-run", env=team.env("reader"))  # fmt: skip
    assert "warning" not in done.stderr
    [deployment, *_] = yaml.safe_load_all(done.stdout)
    kubernetes_validate.validate(deployment, "1.33.0", strict=True)
    [scoring] = deployment["spec"]["template"]["spec"]["containers"]
    refs = [e["valueFrom"] for e in scoring["env"] if "valueFrom" in e]
    assert refs == [{"secretKeyRef": {"name": "team-telemetry", "key": "token"}}]
