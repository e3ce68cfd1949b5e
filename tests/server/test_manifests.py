"""`amlpkg server manifests`: valid Kubernetes objects, credentials only by reference."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from amlpkg.cli.app import app
from amlpkg.errors import InvalidArgumentError
from amlpkg.server.manifests import ServerManifest, manifests


def test_the_manifests_validate_and_reference_the_secret() -> None:
    done = CliRunner().invoke(
        app,
        ["server", "--artifacts", "s3://team/amlpkg", "manifests", "--image", "reg/amlpkg:1",
         "--replicas", "3", "--namespace", "ml", "--s3-endpoint", "http://s3:8333",
         "--s3-public-endpoint", "https://s3.example.com"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    objects = list(yaml.safe_load_all(done.output))
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    deployment = objects[0]
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["AMLPKG_STORE"]["valueFrom"]["secretKeyRef"] == {
        "name": "amlpkg-server",
        "key": "store-url",
    }
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert env["AMLPKG_ARTIFACTS"]["value"] == "s3://team/amlpkg"
    assert env["AMLPKG_S3_ENDPOINT_URL"]["value"] == "http://s3:8333"
    assert env["AMLPKG_S3_PUBLIC_ENDPOINT_URL"]["value"] == "https://s3.example.com"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/api/v1/health"


def test_replicas_need_a_bucket() -> None:
    with pytest.raises(InvalidArgumentError, match="bucket"):
        manifests(ServerManifest(image="x", artifacts="", secret="s"))


def test_no_public_endpoint_unless_asked() -> None:
    spec = ServerManifest(image="x", artifacts="s3://b/p", secret="s", s3_endpoint="http://s3:1")
    container = manifests(spec)[0]["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"]}
    assert "AMLPKG_S3_ENDPOINT_URL" in names and "AMLPKG_S3_PUBLIC_ENDPOINT_URL" not in names
