"""Flavors and platforms: which base image, Python, wheels and providers an image gets.

Pure functions only, so every flavor (cpu, cuda, tensorrt, openvino, and edge-agent:
the agent's own image) and platform
(amd64, arm64) is unit-tested on a CPU machine without building anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from amlpkg.errors import InvalidArgumentError

ONNXRUNTIME = "onnxruntime"
RUNTIME_EXTRA = "runtime"
# amlpkg-runtime's extra for a server started with --require-signature (model-signing).
SIGNING_EXTRA = "signing"
# Base requirements only the CLI needs; the scoring server never imports them.
CLI_ONLY = frozenset({"rich", "typer"})
# uvicorn[standard] also brings file watching, websockets and dotenv, which a server
# in an image never uses: take uvicorn alone plus the two parts the runtime runs on.
LEAN = {"uvicorn": ("httptools>=0.6", "uvloop>=0.19")}
# Parts of the ONNX Runtime wheel that serving never loads (site-packages globs):
# the Python tooling (quantization, transformers, ...) and the C API library, which
# the Python binding does not link.
ORT_TOOLING = ("onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools")


@dataclass(frozen=True)
class Flavor:
    """What one flavor puts in an image beside the runtime."""

    name: str
    base_image: str
    """Default base image (``--base-image`` overrides it)."""
    python_version: str
    """CPython of the default base image: the wheelhouse targets it."""
    glibc: tuple[int, int]
    """glibc of the default base image: the newest manylinux tag its wheels may use."""
    onnxruntime: str
    """The ONNX Runtime distribution (they all install the ``onnxruntime`` module)."""
    extra_wheels: tuple[str, ...] = ()
    providers: tuple[str, ...] = ("cpu",)
    """Execution providers the model config asks for, in fallback order."""
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
    installs_python: bool = False
    """The base image has no Python: the recipe installs Debian/Ubuntu's with apt."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment of the final image (``{site}`` is the venv's site-packages)."""
    prune: tuple[str, ...] = ORT_TOOLING
    """site-packages paths (globs) deleted after install: never loaded when serving."""


# nvidia/cuda runtime images carry no Python; Ubuntu 24.04's is 3.12 (glibc 2.39).
_CUDA_BASE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"

FLAVORS: dict[str, Flavor] = {
    "cpu": Flavor(
        name="cpu",
        base_image="python:3.11-slim",
        python_version="3.11",
        glibc=(2, 36),
        onnxruntime="onnxruntime",
        prune=(*ORT_TOOLING, "onnxruntime/capi/libonnxruntime.so*"),
    ),
    "cuda": Flavor(
        name="cuda",
        base_image=_CUDA_BASE,
        python_version="3.12",
        glibc=(2, 39),
        onnxruntime="onnxruntime-gpu",
        providers=("cuda", "cpu"),
        platforms=("linux/amd64",),
        installs_python=True,
    ),
    "tensorrt": Flavor(
        name="tensorrt",
        base_image=_CUDA_BASE,
        python_version="3.12",
        glibc=(2, 39),
        onnxruntime="onnxruntime-gpu",
        # The TensorRT major must be the one ONNX Runtime's TensorRT provider links (10).
        extra_wheels=("tensorrt-cu12-libs>=10,<11",),
        providers=("tensorrt", "cuda", "cpu"),
        platforms=("linux/amd64",),
        installs_python=True,
        # ONNX Runtime's TensorRT provider dlopens libnvinfer from the library path.
        env={"LD_LIBRARY_PATH": "{site}/tensorrt_libs"},
    ),
    "openvino": Flavor(
        name="openvino",
        # ubuntu22_runtime carries Python 3.10, older than amlpkg supports (>= 3.11).
        base_image="openvino/ubuntu24_runtime:2025.3.0",
        python_version="3.12",
        glibc=(2, 39),
        onnxruntime="onnxruntime-openvino",
        providers=("openvino", "cpu"),
        platforms=("linux/amd64",),
    ),
    # The IoT Edge agent's own image (build.agent_image): runtime + agent, no model.
    "edge-agent": Flavor(
        name="edge-agent",
        base_image="python:3.11-slim",
        python_version="3.11",
        glibc=(2, 36),
        onnxruntime="onnxruntime",
        prune=(*ORT_TOOLING, "onnxruntime/capi/libonnxruntime.so*"),
    ),
}

_ARCH = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PYTHON = re.compile(r"^3\.\d{1,2}$")


def get_flavor(name: str) -> Flavor:
    """The flavor ``name``, or a clear error listing the known ones."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown flavor {name!r}", hint=f"use one of: {', '.join(FLAVORS)}"
        ) from None


def check_platform(flavor: Flavor, platform: str) -> str:
    """``platform`` if the flavor has wheels for it; otherwise a clear error."""
    if platform not in _ARCH:
        raise InvalidArgumentError(
            f"unknown platform {platform!r}", hint=f"use one of: {', '.join(_ARCH)}"
        )
    if platform not in flavor.platforms:
        raise InvalidArgumentError(
            f"flavor {flavor.name} has no {platform} wheels ({flavor.onnxruntime} is published"
            f" for {', '.join(flavor.platforms)} only)",
            hint="use --flavor cpu on arm64 boards, or a --base-image that already has a"
            " matching ONNX Runtime",
        )
    return platform


def check_python_version(version: str) -> str:
    """``MAJOR.MINOR`` of a CPython amlpkg supports (3.11 or newer)."""
    if not _PYTHON.match(version) or int(version.split(".")[1]) < 11:
        raise InvalidArgumentError(
            f"invalid Python version {version!r} for the image",
            hint="give MAJOR.MINOR of the base image's python3, 3.11 or newer (e.g. 3.12)",
        )
    return version


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a requirement line (PEP 503)."""
    match = _NAME.match(requirement)
    if match is None:
        raise InvalidArgumentError(f"cannot read the requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _extra_of(marker: str) -> str | None:
    found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
    return found.group(1) if found else None


def runtime_requirements(
    requires: list[str], flavor: Flavor, extras: tuple[str, ...] = ()
) -> list[str]:
    """What the image installs: amlpkg's base and ``[runtime]`` requirements for ``flavor``.

    ``requires`` is amlpkg's own metadata (``importlib.metadata.requires``). ONNX
    Runtime is swapped for the flavor's distribution (installing two of them would
    clash: they ship the same module) and the flavor's extra wheels are added. No
    other extra (train, deploy, ...) goes in but ``extras`` (``signing``), nor what
    only the CLI needs.
    """
    wanted = (RUNTIME_EXTRA, *extras)
    chosen: list[str] = []
    for line in requires:
        spec, _, marker = line.partition(";")
        extra = _extra_of(marker) if marker.strip() else None
        if marker.strip() and extra not in wanted:
            continue
        spec = spec.strip()
        name = requirement_name(spec)
        if name in CLI_ONLY:
            continue
        if name == ONNXRUNTIME:
            spec = flavor.onnxruntime + spec[len(ONNXRUNTIME) :]
        if name in LEAN:
            spec = re.sub(r"\[[^\]]*\]", "", spec)
        for item in (spec, *LEAN.get(name, ())):
            if item not in chosen:
                chosen.append(item)
    if not any(requirement_name(s) == requirement_name(flavor.onnxruntime) for s in chosen):
        chosen.append(flavor.onnxruntime)
    chosen.extend(w for w in flavor.extra_wheels if w not in chosen)
    return chosen


def pip_platform_tags(platform: str, glibc: tuple[int, int]) -> list[str]:
    """pip ``--platform`` tags for wheels that run on ``platform`` with ``glibc``.

    manylinux wheels built for an older glibc run on a newer one, so every tag up to
    the base image's glibc is accepted (plus the legacy manylinux2014 alias).
    """
    arch = _ARCH[platform]
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    return tags


def wheelhouse_key_parts(
    requirements: list[str], python_version: str, platform: str, glibc: tuple[int, int]
) -> list[str]:
    """Everything that decides the wheelhouse's content, in a stable order (its cache key)."""
    return [
        f"python={python_version}",
        f"platform={platform}",
        f"glibc={glibc[0]}.{glibc[1]}",
        *sorted(requirements),
    ]
