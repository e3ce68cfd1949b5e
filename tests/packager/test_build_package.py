"""Package folders (run.sh from a bundled wheelhouse), tarballs, Triton repositories and
the CLI's answers to bad input. No Docker needed; the folder test installs from its own
wheelhouse (no index) and scores the started server with tritonclient."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

from amlpkg.cli.app import app
from amlpkg.errors import AlreadyExistsError, NotFoundError
from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.package_dir import build_package_dir, make_package
from amlpkg.packager.build.records import list_packages
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import get_model_version
from tests.packager.conftest import TrainedModel, wait_ready
from tests.services import free_port


@pytest.fixture(scope="module")
def package_dir(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One package folder of the trained model, shared by the module."""
    output = tmp_path_factory.mktemp("pkg") / "iris-server"
    return build_package_dir(trained_model.ref, output, home=trained_model.home)


def test_package_folder_layout_and_record(package_dir: Path, trained_model: TrainedModel) -> None:
    version = get_model_version(trained_model.ref, home=trained_model.home)
    assert (package_dir / "models" / version.name / str(version.version) / "model.onnx").is_file()
    assert (package_dir / "models" / version.name / "config.yaml").is_file()
    assert (package_dir / "app" / "amlpkg" / "runtime" / "server.py").is_file()
    # Only the runtime of amlpkg goes in: no trainer, no packager.
    assert not (package_dir / "app" / "amlpkg" / "trainer").exists()
    assert not (package_dir / "app" / "amlpkg" / "packager").exists()
    wheels = {p.name.split("-")[0].lower() for p in (package_dir / "wheelhouse").glob("*.whl")}
    assert {"onnxruntime", "numpy", "grpcio", "pip"} <= wheels
    assert not wheels & {"scikit_learn", "torch", "docker", "skl2onnx"}
    assert os.access(package_dir / "run.sh", os.X_OK)
    with open_workspace(trained_model.home) as ws:
        recorded = [p for p in list_packages(ws) if p.path == str(package_dir)]
    assert len(recorded) == 1 and recorded[0].format == "dir"
    assert recorded[0].labels["ai.amlpkg.model.run-id"] == trained_model.run_id


@pytest.mark.slow
def test_package_folder_runs_with_its_start_script(
    package_dir: Path, trained_model: TrainedModel, tmp_path: Path
) -> None:
    import tritonclient.http as httpclient

    http_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["AMLPKG_VENV"] = str(tmp_path / "venv")
    # The wheelhouse targets this interpreter's Python: make run.sh's venv from it.
    env["PYTHON"] = getattr(sys, "_base_executable", sys.executable)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(package_dir / "run.sh"),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
            "--host",
            "127.0.0.1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    try:
        wait_ready(http_port, timeout_s=240)  # the first start installs the wheelhouse
        version = get_model_version(trained_model.ref, home=trained_model.home)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
        x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
        tensor = httpclient.InferInput(version.signature["inputs"][0]["name"], [2, 4], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(version.name, [tensor])
        client.close()
        label = version.signature["outputs"][0]["name"]
        assert result.as_numpy(label).tolist() == [0, 2]  # setosa, virginica
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=10)
            log.close()
    assert server.returncode is not None
    # The venv was made from the folder's wheelhouse, the Python of this host.
    assert (tmp_path / "venv" / ".amlpkg-ready").is_file()


def test_tar_format_packs_the_same_content(trained_model: TrainedModel, tmp_path: Path) -> None:
    archive = tmp_path / "iris.tar.gz"
    with open_workspace(trained_model.home) as ws:
        package = make_package(
            ws, trained_model.ref, BuildOptions(format="tar", output=archive, use_variant=False)
        )
    assert package.format == "tar" and package.path == str(archive)
    with open_workspace(trained_model.home) as ws:
        # One row for the tarball; none for the folder it was packed from.
        assert [p.format for p in list_packages(ws) if p.id == package.id] == ["tar"]
        assert not [p for p in list_packages(ws) if "staging" in (p.path or "")]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "iris/run.sh" in names
    assert any(n.startswith("iris/wheelhouse/onnxruntime-") for n in names)
    assert any(n.endswith("/model.onnx") for n in names)
    assert not list(tmp_path.glob(".*staging*"))  # nothing half-made left behind


def test_triton_export_is_a_valid_triton_repository(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    output = tmp_path / "triton"
    build = ["build", trained_model.ref, "--format", "triton", "--output", str(output),
             "--home", str(trained_model.home)]  # fmt: skip
    result = CliRunner().invoke(app, [*build, "--max-batch-size", "32", "--json"])
    assert result.exit_code == 0, result.output
    version = get_model_version(trained_model.ref, home=trained_model.home)
    model_dir = output / version.name
    assert (model_dir / str(version.version) / "model.onnx").is_file()
    config = text_format.Parse(
        (model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 32
    assert [i.name for i in config.input] == [s["name"] for s in version.signature["inputs"]]
    assert list(config.input[0].dims) == [4]
    # Writing over it again is refused, and the first export is left as it was.
    again = CliRunner().invoke(app, build)
    assert again.exit_code != 0
    assert isinstance(again.exception, AlreadyExistsError)
    assert "max_batch_size: 32" in (model_dir / "config.pbtxt").read_text()


def _cli_error(args: list[str]) -> str:
    """Run the real entry point in a subprocess: error text, exit code 2."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "amlpkg"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


def test_bad_flavor_is_a_clear_error(trained_model: TrainedModel) -> None:
    text = _cli_error(
        ["build", trained_model.ref, "--flavor", "tpu", "--home", str(trained_model.home)]
    )
    assert "unknown flavor 'tpu'" in text and "cpu, cuda, tensorrt, openvino" in text


def test_bad_ref_is_a_clear_error_and_records_nothing(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    with open_workspace(trained_model.home) as ws:
        before = len(list_packages(ws))
        with pytest.raises(NotFoundError):
            make_package(ws, "no-such-model:1", BuildOptions(format="dir", output=tmp_path / "x"))
        assert len(list_packages(ws)) == before
    assert not (tmp_path / "x").exists()


def test_gpu_flavor_on_arm64_is_refused_before_any_work(trained_model: TrainedModel) -> None:
    text = _cli_error(
        [
            "build",
            trained_model.ref,
            "--flavor",
            "cuda",
            "--platform",
            "linux/arm64",
            "--home",
            str(trained_model.home),
        ]
    )
    assert "no linux/arm64 wheels" in text


def test_quickstart_step_says_clearly_when_there_is_no_docker(
    trained_model: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlpkg.packager.build import quickstart_step

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with open_workspace(trained_model.home) as ws:
        before = len(list_packages(ws))
        line = quickstart_step(ws, trained_model.ref)
        assert len(list_packages(ws)) == before
    assert line.startswith("no Docker engine, so no image was built")
    assert f"amlpkg package {trained_model.ref}" in line


def test_the_chosen_variant_is_what_gets_packaged(tmp_path: Path) -> None:
    """optimize --auto chose a variant: the build ships it and links it in the lineage."""
    import hashlib

    from amlpkg.packager.optimize import Limits, optimize
    from amlpkg.trainer.lineage_view import lineage
    from amlpkg.trainer.registry import register
    from tests.runtime import toy_models

    with open_workspace(tmp_path / "home") as ws:
        source = toy_models.save(toy_models.mlp_model((4, 8, 3), seed=0), tmp_path, "mlp", 1)
        version = register("mlp", source, workspace=ws)
        report = optimize(
            version.ref,
            workspace=ws,
            auto=True,
            precision="fp32",
            limits=Limits(max_slowdown=1000.0),
            budget_s=0.01,
            batch_sizes=(1, 8),
        )
        assert report.chosen is not None
        output = tmp_path / "triton"
        package = make_package(ws, version.ref, BuildOptions(format="triton", output=output))
        shipped = output / "mlp" / "1" / "model.onnx"
        assert package.variant_id == report.chosen.id
        assert hashlib.sha256(shipped.read_bytes()).hexdigest() == report.chosen.sha256
        assert package.labels["ai.amlpkg.model.variant"] == report.chosen.id
        # --original ships the version itself.
        plain = make_package(
            ws,
            version.ref,
            BuildOptions(format="triton", output=tmp_path / "plain", use_variant=False),
        )
        assert plain.variant_id is None
        edges = lineage(version.ref, workspace=ws)["downstream"]
    assert any(
        (e["src_kind"], e["src_id"], e["dst_kind"], e["dst_id"])
        == ("variant", report.chosen.id, "package", package.id)
        for e in edges
    )


def test_package_command_writes_a_folder(trained_model: TrainedModel, tmp_path: Path) -> None:
    import json

    output = tmp_path / "served"
    result = CliRunner().invoke(
        app,
        [
            "package",
            trained_model.ref,
            "--output",
            str(output),
            "--original",
            "--json",
            "--home",
            str(trained_model.home),
        ],
    )
    assert result.exit_code == 0, result.output
    package = json.loads(result.stdout)
    assert package["format"] == "dir" and package["path"] == str(output.resolve())
    assert package["model_ref"] == trained_model.ref
    assert (output / "run.sh").is_file() and (output / "wheelhouse" / "requirements.txt").is_file()
    # A second package into the same, now non-empty, folder is refused.
    again = CliRunner().invoke(
        app,
        ["package", trained_model.ref, "--output", str(output), "--home", str(trained_model.home)],
    )
    assert isinstance(again.exception, AlreadyExistsError)
