"""The Dockerfile, model config and labels of a scoring image (pure functions).

Layer order is chosen for rebuild speed: base, then the dependencies (wheelhouse
installed into a venv in a throw-away stage, copied over as one layer), then our
own code, then the model LAST, then metadata only (labels and the command, which
make no filesystem layer). A model-only change so rebuilds a single layer.
The Dockerfile uses no BuildKit features, so the classic builder of any Docker
engine builds it; nothing in it reaches the network (pip runs with ``--no-index``).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import Any

from amlpkg.packager.build.flavors import Flavor

VENV = "/opt/amlpkg/venv"
APP = "/opt/amlpkg/app"
MODELS = "/models"
USER_ID = 10001  # numeric, so Kubernetes runAsNonRoot can verify it
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
WHEELHOUSE_DIR = "wheelhouse"  # in the build context / package folder
APP_DIR = "app"
MODELS_DIR = "models"
REQUIREMENTS_FILE = "requirements.txt"
SOURCE_URL = "https://github.com/amlpkg/amlpkg"
# ``--require-signature``: the signer's public key (or root chain), shipped with our code.
TRUST_FILE = "trust.pem"
TRUST_PATH = f"{APP}/{TRUST_FILE}"
LABEL_PREFIX = "ai.amlpkg"
# Modules the server imports at start (bytecode is written for these only).
WARM_IMPORTS = (
    "numpy",
    "onnxruntime",
    "grpc",
    "google.protobuf",
    "uvicorn",
    "starlette.applications",
    "pydantic",
    "pydantic_settings",
    "yaml",
    "orjson",
    "prometheus_client",
    "opentelemetry.sdk.trace",
    "httptools",
    "uvloop",
)
# site-packages paths no flavor serves with: numpy's Fortran wrapper generator and C headers.
NEVER_SERVED = ("numpy/f2py", "numpy/distutils", "numpy/_core/include", "numpy/_pyinstaller")


@dataclass(frozen=True)
class ModelFacts:
    """The lineage facts an image carries about the model inside it."""

    name: str
    version: int
    sha256: str
    run_id: str | None = None
    variant: str | None = None
    git_commit: str | None = None
    description: str | None = None


def image_labels(
    facts: ModelFacts,
    *,
    flavor: str,
    amlpkg_version: str,
    revision: str | None,
    created: float | None = None,
) -> dict[str, str]:
    """OCI ``org.opencontainers.image.*`` labels plus the ``ai.amlpkg.*`` lineage labels."""
    stamp = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if created is None else created)
    )
    labels = {
        "org.opencontainers.image.title": f"{facts.name} scoring server",
        "org.opencontainers.image.version": f"{facts.name}-{facts.version}",
        "org.opencontainers.image.created": stamp,
        "org.opencontainers.image.revision": revision or "unknown",
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.description": facts.description
        or f"KServe v2 scoring server (amlpkg {amlpkg_version}, {flavor}) for model"
        f" {facts.name}:{facts.version}",
        f"{LABEL_PREFIX}.model.name": facts.name,
        f"{LABEL_PREFIX}.model.version": str(facts.version),
        f"{LABEL_PREFIX}.model.sha256": facts.sha256,
        f"{LABEL_PREFIX}.model.variant": facts.variant or "",
        f"{LABEL_PREFIX}.model.run-id": facts.run_id or "",
        f"{LABEL_PREFIX}.model.git-commit": facts.git_commit or "",
        f"{LABEL_PREFIX}.flavor": flavor,
        f"{LABEL_PREFIX}.amlpkg.version": amlpkg_version,
    }
    return labels


def model_config(
    flavor: Flavor,
    *,
    providers: tuple[dict[str, Any], ...] | None = None,
    max_batch_size: int = 0,
    queue_delay_us: int = 0,
) -> dict[str, Any]:
    """The runtime's ``config.yaml`` for the flavor (providers; batching when asked).

    ``providers`` (config.yaml form) come from a chosen variant, measured with them;
    otherwise the flavor's own list is used.
    """
    chosen = [dict(p) for p in providers] if providers else [{"name": p} for p in flavor.providers]
    config: dict[str, Any] = {
        "execution_providers": chosen,
        "on_provider_fallback": "fail",
        # Spin-waiting burns the cores a server and its neighbours need (DESIGN.md).
        "allow_spinning": False,
    }
    if max_batch_size > 0:
        config["max_batch_size"] = max_batch_size
        config["dynamic_batching"] = {"max_queue_delay_microseconds": queue_delay_us}
    return config


def _json(argv: list[str]) -> str:
    return json.dumps(argv)


def _label_lines(labels: dict[str, str]) -> list[str]:
    # One instruction (one build step); json.dumps quotes and escapes exactly as a
    # Dockerfile's double-quoted value needs.
    pairs = [f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items())]
    return ["LABEL " + " \\\n      ".join(pairs)] if pairs else []


def server_command(repository: str = MODELS) -> list[str]:
    """The image's CMD: the runtime on ``repository`` (default: the one baked into the image)."""
    return [
        "python",
        "-m",
        "amlpkg.runtime",
        "--model-repository",
        repository,
        "--http-port",
        str(HTTP_PORT),
        "--grpc-port",
        str(GRPC_PORT),
        "--metrics-port",
        str(METRICS_PORT),
    ]


HEALTHCHECK_CODE = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{HTTP_PORT}/v2/health/ready',"
    " timeout=2).status == 200 else 1)"
)


def deps_stage(*, base_image: str, flavor: Flavor, python_version: str,
               warm_imports: tuple[str, ...] = WARM_IMPORTS) -> list[str]:  # fmt: skip
    """The ``base`` and ``deps`` stages: the wheelhouse installed into a venv, offline."""
    site = f"{VENV}/lib/python{python_version}/site-packages"
    lines = [f"FROM {base_image} AS base"]
    if flavor.installs_python:
        # CUDA runtime images carry no Python; this layer is shared by both stages below.
        lines.append(
            "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y"
            " --no-install-recommends python3 python3-venv ca-certificates"
            " && rm -rf /var/lib/apt/lists/*"
        )
    lines += [
        "",
        "FROM base AS deps",
        f"COPY {WHEELHOUSE_DIR}/ /tmp/wheelhouse/",
        # pip comes from the wheelhouse itself (a wheel is importable), so the base needs
        # no pip and the venv keeps none: --without-pip, then --no-index install.
        f"RUN python3 -m venv --without-pip {VENV}"
        f" && PIP=$(ls /tmp/wheelhouse/pip-*.whl)"
        f" && {VENV}/bin/python $PIP/pip install --no-index --no-cache-dir --no-compile"
        f" --disable-pip-version-check --find-links /tmp/wheelhouse"
        f" -r /tmp/wheelhouse/{REQUIREMENTS_FILE}"
        f" && find {VENV} -depth -type d \\( -name tests -o -name __pycache__ \\)"
        f" -path '*/site-packages/*' -exec rm -rf {{}} +"
        f" && find {site} -name '*.pyi' -delete"
        + "".join(f" && rm -rf {site}/{glob}" for glob in (*flavor.prune, *NEVER_SERVED))
        # Importing what the server imports writes bytecode for exactly those modules:
        # a fast start without shipping bytecode for everything. It also proves the
        # installed wheels load on this base.
        + f" && {VENV}/bin/python -c {shlex.quote('import ' + ', '.join(warm_imports))}",
    ]
    return lines


def image_env(flavor: Flavor, python_version: str, *, require_signature: bool = False) -> list[str]:
    """``ENV`` lines of the final stage: the venv first on PATH, our code importable.

    ``require_signature``: the runtime loads only models whose signature verifies
    against :data:`TRUST_PATH` (set in the environment, so a deployment that replaces
    the command keeps it).
    """
    site = f"{VENV}/lib/python{python_version}/site-packages"
    env = {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": APP,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        **{k: v.format(site=site) for k, v in flavor.env.items()},
    }
    if require_signature:
        env |= {"AMLPKG_SERVER_REQUIRE_SIGNATURE": "true", "AMLPKG_SERVER_TRUST": TRUST_PATH}
    return [f"ENV {k}={json.dumps(v)}" for k, v in env.items()]


def label_lines(labels: dict[str, str]) -> list[str]:
    """One ``LABEL`` instruction with every label (metadata only, no layer)."""
    return _label_lines(labels)


def render_dockerfile(
    *,
    base_image: str,
    flavor: Flavor,
    python_version: str,
    labels: dict[str, str],
    require_signature: bool = False,
) -> str:
    """The Dockerfile of a scoring image, for the classic builder (no BuildKit needed).

    ``require_signature``: the ``[signing]`` wheels are in the wheelhouse (imported at
    build time to prove it) and ``app/trust.pem`` is the key the runtime verifies with.
    """
    warm = (*WARM_IMPORTS, "model_signing.verifying") if require_signature else WARM_IMPORTS
    lines = [
        "# Generated by amlpkg build. Layers: base, dependencies, amlpkg, model, metadata.",
        *deps_stage(
            base_image=base_image, flavor=flavor, python_version=python_version, warm_imports=warm
        ),
        "",
        "FROM base",
        f"COPY --from=deps {VENV} {VENV}",
        f"COPY {APP_DIR}/ {APP}/",
        *image_env(flavor, python_version, require_signature=require_signature),
        f"USER {USER_ID}:{USER_ID}",
        f"EXPOSE {HTTP_PORT} {GRPC_PORT} {METRICS_PORT}",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3"
        f" CMD {_json(['python', '-c', HEALTHCHECK_CODE])}",
        "# The model goes last: changing only the model rebuilds only this layer.",
        f"COPY {MODELS_DIR}/ {MODELS}/",
        f"CMD {_json(server_command())}",
        *_label_lines(labels),
        "",
    ]
    return "\n".join(lines)
