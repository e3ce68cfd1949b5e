"""Unit tests of the build recipe: flavors, wheel selection, Dockerfile, labels, Triton config.

Pure functions: every flavor (cpu, cuda, tensorrt, openvino) and arm64 checked on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.base_image import LOCAL_BASE_TAG
from amlpkg.packager.build.errors import BuildError
from amlpkg.packager.build.flavors import (
    FLAVORS,
    check_platform,
    get_flavor,
    pip_platform_tags,
    requirement_name,
    runtime_requirements,
)
from amlpkg.packager.build.image import consume_build_stream, split_ref
from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.recipe import (
    ModelFacts,
    image_labels,
    model_config,
    render_dockerfile,
)
from amlpkg.packager.build.triton import config_pbtxt
from amlpkg.packager.build.wheelhouse import installed_requires
from amlpkg.runtime.model_config import parse_model_config

REQUIRES = [
    "numpy>=1.26",
    "rich>=13.7",
    "typer>=0.12",
    'onnxruntime>=1.18; extra == "runtime"',
    'uvicorn[standard]>=0.30; extra == "runtime"',
    'grpcio>=1.81.1; extra == "runtime"',
    'scikit-learn>=1.4; extra == "train"',
    'docker>=7.1; extra == "deploy"',
    'onnxruntime>=1.18; extra == "train"',
]
FACTS = ModelFacts(
    name="iris", version=3, sha256="ab" * 32, run_id="run-1", variant=None, git_commit="c0ffee"
)


def _names(requirements: list[str]) -> set[str]:
    return {requirement_name(r) for r in requirements}


@pytest.mark.parametrize(
    ("flavor", "ort", "extra"),
    [
        ("cpu", "onnxruntime", set()),
        ("cuda", "onnxruntime-gpu", set()),
        ("tensorrt", "onnxruntime-gpu", {"tensorrt-cu12-libs"}),
        ("openvino", "onnxruntime-openvino", set()),
    ],
)
def test_wheel_selection_per_flavor(flavor: str, ort: str, extra: set[str]) -> None:
    chosen = runtime_requirements(REQUIRES, get_flavor(flavor))
    names = _names(chosen)
    assert ort in names
    # Exactly one ONNX Runtime: two would install the same module over each other.
    assert len([n for n in names if n.startswith("onnxruntime")]) == 1
    assert extra <= names
    # Only the runtime: no training, deploy or CLI-only packages.
    assert not names & {"scikit-learn", "docker", "rich", "typer"}
    assert {"numpy", "grpcio", "uvicorn", "httptools", "uvloop"} <= names
    assert f"{ort}>=1.18" in chosen
    assert "uvicorn>=0.30" in chosen  # without [standard]'s file watching and websockets


def test_wheel_selection_from_the_real_metadata() -> None:
    names = _names(runtime_requirements(installed_requires(), get_flavor("cpu")))
    assert {"onnxruntime", "starlette", "orjson", "prometheus-client", "pyyaml"} <= names
    assert not names & {"torch", "skl2onnx", "kubernetes", "onnx", "scikit-learn"}


def test_pip_platform_tags_for_amd64_and_arm64() -> None:
    amd = pip_platform_tags("linux/amd64", (2, 36))
    arm = pip_platform_tags("linux/arm64", (2, 28))
    assert amd[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in amd
    assert "manylinux2014_x86_64" in amd
    assert arm[0] == "manylinux_2_28_aarch64" and all(t.endswith("aarch64") for t in arm)
    assert "manylinux_2_29_aarch64" not in arm  # newer than the base's glibc


def test_arm64_is_refused_where_the_flavor_has_no_wheels() -> None:
    assert check_platform(get_flavor("cpu"), "linux/arm64") == "linux/arm64"
    for flavor in ("cuda", "tensorrt", "openvino"):
        with pytest.raises(InvalidArgumentError, match="no linux/arm64 wheels"):
            check_platform(get_flavor(flavor), "linux/arm64")
    with pytest.raises(InvalidArgumentError, match="unknown platform"):
        check_platform(get_flavor("cpu"), "windows/amd64")


def test_unknown_flavor_and_bad_options_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown flavor 'tpu'") as caught:
        get_flavor("tpu")
    assert caught.value.hint is not None and "cpu" in caught.value.hint
    with pytest.raises(InvalidArgumentError, match="unknown format"):
        BuildOptions(format="zip").resolved()
    with pytest.raises(InvalidArgumentError, match="Python version"):
        BuildOptions(python_version="3.9").resolved()
    with pytest.raises(InvalidArgumentError, match="--push needs --format image"):
        BuildOptions(format="dir", push=True).resolved()


def test_options_follow_the_base_image() -> None:
    local = BuildOptions(base_image=LOCAL_BASE_TAG, platform="linux/amd64").resolved()
    assert (local.python_version, local.glibc) == ("3.11", (2, 36))
    cuda = BuildOptions(flavor="cuda", platform="linux/amd64").resolved()
    assert cuda.base_image == FLAVORS["cuda"].base_image and cuda.python_version == "3.12"
    pinned = BuildOptions(base_image="my/base:1", python_version="3.13").resolved()
    assert pinned.python_version == "3.13"


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_dockerfile_layer_order_and_runtime_contract(flavor: str) -> None:
    spec = get_flavor(flavor)
    labels = image_labels(FACTS, flavor=flavor, amlpkg_version="0.1.0", revision="abc")
    text = render_dockerfile(
        base_image=spec.base_image, flavor=spec, python_version=spec.python_version, labels=labels
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM "))]
    assert final == "FROM base"
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(prefix))
        for prefix in ("FROM base\n"[:-1], "COPY --from=deps", "COPY app/", "COPY models/")
    ]
    assert order == sorted(order)
    # Nothing after the model makes a filesystem layer: only metadata follows it.
    after_model = lines[order[-1] + 1 :]
    assert all(line.split()[0] in {"CMD", "LABEL"} or line.startswith(" ") for line in after_model)
    assert "--no-index" in text and "USER 10001:10001" in text
    assert "EXPOSE 8000 8001 8002" in text
    assert "/v2/health/ready" in text and "curl" not in text
    assert ("apt-get install" in text) == spec.installs_python
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert cmd[:3] == ["python", "-m", "amlpkg.runtime"] and "/models" in cmd


def test_labels_carry_oci_and_lineage_keys() -> None:
    labels = image_labels(FACTS, flavor="cpu", amlpkg_version="0.1.0", revision="abc", created=0)
    for key in ("title", "version", "created", "revision", "source", "description"):
        assert labels[f"org.opencontainers.image.{key}"]
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    assert labels["ai.amlpkg.model.name"] == "iris"
    assert labels["ai.amlpkg.model.version"] == "3"
    assert labels["ai.amlpkg.model.sha256"] == "ab" * 32
    assert labels["ai.amlpkg.model.run-id"] == "run-1"
    assert labels["ai.amlpkg.model.git-commit"] == "c0ffee"
    assert labels["ai.amlpkg.model.variant"] == ""


def test_label_values_are_quoted_for_the_dockerfile() -> None:
    facts = ModelFacts(name="m", version=1, sha256="0", description='says "hi" \\ bye')
    labels = image_labels(facts, flavor="cpu", amlpkg_version="0", revision=None)
    text = render_dockerfile(
        base_image="b", flavor=get_flavor("cpu"), python_version="3.11", labels=labels
    )
    assert r'"org.opencontainers.image.description"="says \"hi\" \\ bye"' in text


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_model_config_is_valid_for_the_runtime(flavor: str) -> None:
    config = model_config(get_flavor(flavor), max_batch_size=8)
    parsed = parse_model_config(config, "test")
    assert [p.name for p in parsed.execution_providers] == list(get_flavor(flavor).providers)
    assert parsed.max_batch_size == 8 and parsed.dynamic_batching is not None
    assert parsed.allow_spinning is False


def test_variant_providers_win_over_the_flavor() -> None:
    config = model_config(get_flavor("cpu"), providers=({"name": "cpu", "options": {}},))
    assert config["execution_providers"] == [{"name": "cpu", "options": {}}]


SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": ["N", 4]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": ["N"]},
        {"name": "probabilities", "datatype": "FP32", "shape": ["N", 3]},
    ],
}


def _parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_triton_config_parses_as_triton_model_config() -> None:
    config = _parse(config_pbtxt("iris", SIGNATURE))
    assert config.name == "iris" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [-1, 4]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert config.output[0].data_type == model_config_pb2.TYPE_INT64
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not config.HasField("dynamic_batching")


def test_triton_config_batched_and_gpu() -> None:
    config = _parse(config_pbtxt("iris", SIGNATURE, max_batch_size=16, provider="tensorrt"))
    assert config.max_batch_size == 16 and config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [4]
    # A per-sample scalar output is [1] reshaped to [] (Triton needs one dim).
    assert list(config.output[0].dims) == [1] and config.output[0].HasField("reshape")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerators[0].name == "tensorrt"


def test_triton_config_refuses_unservable_types() -> None:
    bad = {"inputs": [{"name": "x", "datatype": None, "shape": [1]}], "outputs": []}
    with pytest.raises(InvalidArgumentError, match="type Triton cannot serve"):
        config_pbtxt("m", bad)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("127.0.0.1:5000/iris:1", ("127.0.0.1:5000/iris", "1")),
        ("amlpkg/iris", ("amlpkg/iris", "latest")),
        ("localhost:5000/a/b", ("localhost:5000/a/b", "latest")),
    ],
)
def test_split_ref(ref: str, expected: tuple[str, str]) -> None:
    assert split_ref(ref) == expected


@pytest.mark.parametrize("ref", ["Iris:1", "iris:", "a b", "iris@@1"])
def test_bad_image_refs_are_refused(ref: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid image reference"):
        split_ref(ref)


def test_build_stream_error_names_the_step_and_log_tail() -> None:
    events = [
        {"stream": "Step 1/3 : FROM base\n"},
        {"stream": "Step 2/3 : RUN pip install\n"},
        {"stream": "ERROR: No matching distribution found for onnxruntime\n"},
        {"error": "The command returned a non-zero code: 1", "errorDetail": {"message": "rc 1"}},
    ]
    steps: list[tuple[int, int]] = []
    with pytest.raises(BuildError) as caught:
        consume_build_stream(events, lambda done, total, _: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3)]
    assert "RUN pip install" in caught.value.message
    assert "No matching distribution found" in caught.value.message


def test_foreign_architecture_failure_hints_at_qemu() -> None:
    events = [
        {"stream": "Step 5/9 : RUN python3 -m venv /opt/amlpkg/venv\n"},
        {"stream": "exec /bin/sh: exec format error\n"},
        {"error": "The command returned a non-zero code: 1"},
    ]
    with pytest.raises(BuildError) as caught:
        consume_build_stream(events, lambda *_: None)
    assert caught.value.hint is not None and "QEMU" in caught.value.hint


def test_a_base_image_that_cannot_be_pulled_hints_at_local_base() -> None:
    events = [
        {"stream": "Step 1/17 : FROM python:3.11-slim AS base\n"},
        {"error": 'Get "https://registry-1.docker.io/v2/": dial tcp: no such host'},
    ]
    with pytest.raises(BuildError) as caught:
        consume_build_stream(events, lambda *_: None)
    assert caught.value.hint is not None and "--local-base" in caught.value.hint


def test_build_stream_returns_the_image_id() -> None:
    events = [{"stream": "Step 1/1 : FROM x\n"}, {"aux": {"ID": "sha256:abc"}}]
    assert consume_build_stream(events, lambda *_: None) == "sha256:abc"


def test_strip_debug_info_shrinks_libraries_and_keeps_record_valid(tmp_path: Path) -> None:
    import base64
    import hashlib
    import shutil
    import zipfile

    import uvloop

    from amlpkg.packager.build.wheelhouse import strip_debug_info

    if shutil.which("strip") is None:
        pytest.skip("binutils' strip is not installed")
    library = next(Path(uvloop.__file__).parent.glob("loop.*.so"))
    original = library.read_bytes()
    if b".debug_info" not in original:
        pytest.skip("this uvloop build is stripped already")
    wheel = tmp_path / "uvloop-0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("uvloop/__init__.py", "")
        archive.writestr(f"uvloop/{library.name}", original)
        archive.writestr("uvloop-0.dist-info/RECORD", "stale,,\n")
    assert strip_debug_info(wheel) is True
    with zipfile.ZipFile(wheel) as archive:
        stripped = archive.read(f"uvloop/{library.name}")
        record = archive.read("uvloop-0.dist-info/RECORD").decode().splitlines()
    assert len(stripped) < len(original) / 2
    assert stripped.startswith(b"\x7fELF") and b".debug_info" not in stripped
    digest = base64.urlsafe_b64encode(hashlib.sha256(stripped).digest()).rstrip(b"=").decode()
    assert f"uvloop/{library.name},sha256={digest},{len(stripped)}" in record
    assert strip_debug_info(wheel) is False  # nothing left to strip
