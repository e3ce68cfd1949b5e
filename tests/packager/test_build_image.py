"""Real images: build a CPU image from a model the trainer registered, push it, run it,
score it with tritonclient over HTTP and gRPC, check labels, lineage and layer reuse.

One image is shared by the module (the session fixture ``built_image``); only the
model-only rebuild test builds a second one, which reuses every other layer.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from amlpkg.packager.build.records import Package, list_packages
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import get_model_version, register
from tests.packager.conftest import TrainedModel
from tests.services import REGISTRY

pytestmark = pytest.mark.slow


def _inputs(signature: dict[str, Any], rows: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        spec["name"]: rng.normal(size=(rows, 4)).astype(np.float32) for spec in signature["inputs"]
    }


def _reference(model_file: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def test_image_is_pushed_and_recorded(built_image: Package, trained_model: TrainedModel) -> None:
    assert built_image.repo_digest is not None
    assert built_image.repo_digest.startswith(f"{REGISTRY}/amlpkg-test/iris@sha256:")
    assert built_image.size_bytes is not None and built_image.size_bytes > 50_000_000
    with open_workspace(trained_model.home) as ws:
        stored = {p.id: p for p in list_packages(ws)}
    assert stored[built_image.id].repo_digest == built_image.repo_digest
    assert stored[built_image.id].model_ref == trained_model.ref


def test_labels_carry_the_lineage(built_image: Package, trained_model: TrainedModel) -> None:
    from amlpkg.packager.build.image import inspect_image

    labels = inspect_image(built_image.image_ref or "").labels
    version = get_model_version(trained_model.ref, home=trained_model.home)
    assert labels["ai.amlpkg.model.name"] == version.name
    assert labels["ai.amlpkg.model.version"] == str(version.version)
    assert labels["ai.amlpkg.model.sha256"] == version.sha256
    assert labels["ai.amlpkg.model.run-id"] == trained_model.run_id
    assert "ai.amlpkg.model.git-commit" in labels
    assert labels["org.opencontainers.image.version"] == f"{version.name}-{version.version}"
    assert labels["org.opencontainers.image.created"].endswith("Z")


def test_image_config_is_non_root_with_healthcheck(built_image: Package) -> None:
    import docker

    client = docker.from_env()
    try:
        config = client.api.inspect_image(built_image.image_id)["Config"]
    finally:
        client.close()
    assert config["User"] == "10001:10001"
    assert set(config["ExposedPorts"]) == {"8000/tcp", "8001/tcp", "8002/tcp"}
    assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])
    assert config["Cmd"][:3] == ["python", "-m", "amlpkg.runtime"]


def test_lineage_command_shows_the_digest(
    built_image: Package, trained_model: TrainedModel
) -> None:
    from amlpkg.cli.app import app

    result = CliRunner().invoke(
        app, ["lineage", trained_model.ref, "--home", str(trained_model.home)]
    )
    assert result.exit_code == 0, result.output
    assert built_image.id in result.output
    assert (built_image.repo_digest or "").split("@")[1][:19] in result.output


def test_container_scores_like_in_process_onnx_runtime(
    built_image: Package, trained_model: TrainedModel, run_image: Any
) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    version = get_model_version(trained_model.ref, home=trained_model.home)
    with open_workspace(trained_model.home) as ws:
        model_file = ws.artifacts.verified_path(version.sha256)
    inputs = _inputs(version.signature)
    expected = _reference(model_file, inputs)
    # The pushed digest is what deployments pull: run exactly that.
    running = run_image(built_image.repo_digest)
    name = version.name

    http = httpclient.InferenceServerClient(f"127.0.0.1:{running.http_port}")
    http_inputs = []
    for key, array in inputs.items():
        tensor = httpclient.InferInput(key, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=True)
        http_inputs.append(tensor)
    http_result = http.infer(name, http_inputs)
    http.close()

    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{running.grpc_port}")
    grpc_inputs = []
    for key, array in inputs.items():
        tensor = grpcclient.InferInput(key, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        grpc_inputs.append(tensor)
    assert grpc.is_model_ready(name)
    grpc_result = grpc.infer(name, grpc_inputs)
    grpc.close()

    for output, want in expected.items():
        np.testing.assert_allclose(http_result.as_numpy(output), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grpc_result.as_numpy(output), want, rtol=1e-5, atol=1e-6)
    assert running.container.attrs["Config"]["User"] == "10001:10001"


def test_model_only_rebuild_reuses_every_other_layer(
    built_image: Package, trained_model: TrainedModel, local_base_image: str, tmp_path: Path
) -> None:
    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.image import inspect_image, remove_image
    from amlpkg.packager.build.options import BuildOptions

    version = get_model_version(trained_model.ref, home=trained_model.home)
    with open_workspace(trained_model.home) as ws:
        # Same name, other bytes: a new version whose file differs only in its doc string.
        import onnx

        model = onnx.load(str(ws.artifacts.verified_path(version.sha256)))
        model.doc_string = f"retrained {uuid.uuid4()}"
        changed = tmp_path / "model.onnx"
        onnx.save(model, str(changed))
        second = register(version.name, changed, workspace=ws)
        tag = f"amlpkg-test/iris-rebuild:{uuid.uuid4().hex[:8]}"
        options = BuildOptions(
            base_image=local_base_image, tag=tag, amlpkg_wheel=trained_model.amlpkg_wheel
        )
        try:
            rebuilt = build_image(ws, second.ref, options)
            first = inspect_image(built_image.image_id or "")
            again = inspect_image(tag)
        finally:
            remove_image(tag)
    assert rebuilt.model_version == second.version
    assert len(first.layers) == len(again.layers) >= 4
    assert first.layers[:-1] == again.layers[:-1]  # base, deps, amlpkg: reused
    assert first.layers[-1] != again.layers[-1]  # the model layer: the only new one


def test_quickstart_step_builds_and_pushes(
    built_image: Package, trained_model: TrainedModel
) -> None:
    from amlpkg.packager.build import quickstart_step
    from amlpkg.packager.build.image import remove_image

    with open_workspace(trained_model.home) as ws:
        line = quickstart_step(ws, trained_model.ref, push_to=REGISTRY)
        newest = list_packages(ws)[0]
    try:
        assert line.startswith("built image ")
        assert newest.repo_digest is not None and newest.repo_digest in line
        # Metadata-only changes (new labels) on top of the shared image's layers.
        assert newest.image_ref == f"{REGISTRY}/amlpkg/iris-classifier:1-cpu"
    finally:
        remove_image(newest.image_ref or "")


def test_a_failing_step_is_a_build_error_and_records_nothing(
    trained_model: TrainedModel, local_base_image: str
) -> None:
    import io
    import tarfile

    import docker

    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.errors import BuildError
    from amlpkg.packager.build.image import remove_image
    from amlpkg.packager.build.options import BuildOptions

    # A base without a shell or Python: the dependency step cannot run in it.
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"empty"))
    repository, version = "amlpkg-test/no-python", uuid.uuid4().hex[:8]
    base = f"{repository}:{version}"
    client = docker.from_env()
    try:
        client.api.import_image_from_data(data.getvalue(), repository=repository, tag=version)
    finally:
        client.close()
    try:
        with open_workspace(trained_model.home) as ws:
            before = len(list_packages(ws))
            with pytest.raises(BuildError) as caught:
                build_image(
                    ws,
                    trained_model.ref,
                    BuildOptions(
                        base_image=base,
                        python_version="3.11",
                        tag=f"amlpkg-test/broken:{uuid.uuid4().hex[:8]}",
                        amlpkg_wheel=trained_model.amlpkg_wheel,
                    ),
                )
            assert len(list_packages(ws)) == before
    finally:
        remove_image(base)
    assert "python3 -m venv" in caught.value.message  # the failing step is named
    assert "last lines of the build log" in caught.value.message
