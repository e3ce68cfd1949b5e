"""The Azure IoT Edge deployment manifest of a scoring deployment (pure functions).

``$edgeAgent`` runs two modules beside the system modules: the scoring module (the
image from ``amlpkg build``, ports published through ``createOptions``) and the
amlpkg edge agent (``python -m amlpkg.edge_agent``, the image ``amlpkg build --flavor
edge-agent`` makes, pinned by digest), whose module twin's desired properties name
the model (name, version, sha256, where to download it: a URL or an ``oci://``
artifact by digest, runtime config) in the shape ``amlpkg.edge_agent.desired`` reads.
When the scoring image carries the model (its labels name it), the twin names none:
the image serves it as built and the agent only reports and forwards telemetry. The agent hosts no
runtime: it verifies each model and pushes it to the scoring module at
``AMLPKG_EDGE_SCORING_URL`` with Triton's load call (file override), which the
scoring module keeps in its ``/tmp``. ``$edgeHub`` routes the agent's telemetry
upstream with a store-and-forward TTL. Registry passwords are never written: the
manifest holds ``${ENV_VAR}`` references, filled from the environment at apply.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from amlpkg.errors import InvalidArgumentError

EDGE_RUNTIME_VERSION = "1.5"
EDGE_AGENT_IMAGE = f"mcr.microsoft.com/azureiotedge-agent:{EDGE_RUNTIME_VERSION}"
EDGE_HUB_IMAGE = f"mcr.microsoft.com/azureiotedge-hub:{EDGE_RUNTIME_VERSION}"
AGENT_MODULE = "amlpkgagent"
PLATFORMS = ("linux/amd64", "linux/arm64")
CREATE_OPTIONS_MAX = 4096  # longer values must be split into createOptions01.. by hand
_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


@dataclass(frozen=True)
class EdgeOptions:
    """What the manifest is made from (the CLI's iotedge options)."""

    name: str
    image: str
    model: dict[str, Any] | None
    """Desired model for the agent: name, version, sha256, url|oci, config; None when
    ``image`` carries the model (the agent then downloads nothing)."""
    agent_image: str
    platform: str = "linux/amd64"
    http_port: int = 8000
    grpc_port: int = 8001
    memory_mb: int | None = None
    registry: str | None = None
    registry_username: str | None = None
    ttl_s: int = 7200
    telemetry_interval_s: float = 60.0
    labels: dict[str, str] = field(default_factory=dict)
    deployment_id: str | None = None
    """Deployment id the agent stamps on device telemetry (default: ``name``)."""


def create_options(data: dict[str, Any]) -> str:
    """Docker create options as the JSON string IoT Edge wants (compact, size-checked)."""
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    if len(text) > CREATE_OPTIONS_MAX:
        raise InvalidArgumentError(
            f"createOptions is {len(text)} characters; IoT Edge takes {CREATE_OPTIONS_MAX}"
        )
    return text


def _scoring_module(opts: EdgeOptions) -> dict[str, Any]:
    host_config: dict[str, Any] = {
        "PortBindings": {
            "8000/tcp": [{"HostPort": str(opts.http_port)}],
            "8001/tcp": [{"HostPort": str(opts.grpc_port)}],
        },
        "ReadonlyRootfs": True,
        # Models pushed by the agent live in /tmp (old and new version during a swap).
        "Tmpfs": {"/tmp": "rw,size=1g"},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    if opts.memory_mb:
        host_config["Memory"] = opts.memory_mb * 1024 * 1024
    return {
        "version": "1.0",
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "startupOrder": 1,
        "imagePullPolicy": "on-create",
        "settings": {
            "image": opts.image,
            "createOptions": create_options(
                {
                    "ExposedPorts": {"8000/tcp": {}, "8001/tcp": {}},
                    "HostConfig": host_config,
                    "Labels": {"amlpkg.ai/platform": opts.platform, **opts.labels},
                }
            ),
        },
        # the agent reads them from /metrics for the rollout gate's drift
        "env": {"AMLPKG_SERVER_OUTPUT_SUMMARIES": {"value": "true"}},
    }


def _agent_module(opts: EdgeOptions) -> dict[str, Any]:
    return {
        "version": "1.0",
        "type": "docker",
        "status": "running",
        "restartPolicy": "always",
        "startupOrder": 2,
        "imagePullPolicy": "on-create",
        "settings": {
            "image": opts.agent_image,
            "createOptions": create_options(
                {
                    "Cmd": ["python", "-m", "amlpkg.edge_agent"],
                    # The agent keeps downloaded models across restarts in a named volume;
                    # with the model in the image it gets another one, so a model an
                    # earlier revision downloaded is never pushed into that image.
                    "HostConfig": {"Binds": [f"{_volume(opts)}:/var/lib/amlpkg"]},
                    "Labels": {"amlpkg.ai/platform": opts.platform},
                }
            ),
        },
        "env": {
            "AMLPKG_EDGE_SCORING_URL": {"value": f"http://{opts.name}:8000"},
            "AMLPKG_EDGE_CACHE": {"value": "/var/lib/amlpkg"},
            "AMLPKG_DEPLOYMENT_ID": {"value": opts.deployment_id or opts.name},
        },
    }


def _volume(opts: EdgeOptions) -> str:
    return f"{opts.name}-models" if opts.model is not None else f"{opts.name}-image"


def _registry_credentials(opts: EdgeOptions) -> dict[str, Any]:
    if not opts.registry:
        return {}
    key = re.sub(r"[^A-Za-z0-9]", "", opts.registry) or "registry"
    return {
        key: {
            "address": opts.registry,
            "username": opts.registry_username or "${AMLPKG_REGISTRY_USERNAME}",
            "password": "${AMLPKG_REGISTRY_PASSWORD}",
        }
    }


def agent_desired(opts: EdgeOptions) -> dict[str, Any]:
    """The agent module twin's desired properties (no ``model`` when the image has it)."""
    desired: dict[str, Any] = {"telemetry_interval_s": opts.telemetry_interval_s}
    if opts.model is not None:
        desired["model"] = opts.model
    return desired


def _route(opts: EdgeOptions) -> str:
    return f"FROM /messages/modules/{AGENT_MODULE}/outputs/* INTO $upstream"


def deployment_manifest(opts: EdgeOptions) -> dict[str, Any]:
    """A full deployment manifest for one device (``modulesContent``)."""
    if opts.platform not in PLATFORMS:
        raise InvalidArgumentError(
            f"unsupported platform {opts.platform!r}", hint=f"use one of {', '.join(PLATFORMS)}"
        )
    edge_hub_options = {
        "HostConfig": {
            "PortBindings": {
                "5671/tcp": [{"HostPort": "5671"}],
                "8883/tcp": [{"HostPort": "8883"}],
                "443/tcp": [{"HostPort": "443"}],
            }
        }
    }
    return {
        "modulesContent": {
            "$edgeAgent": {
                "properties.desired": {
                    "schemaVersion": "1.1",
                    "runtime": {
                        "type": "docker",
                        "settings": {
                            "minDockerVersion": "v1.25",
                            "registryCredentials": _registry_credentials(opts),
                        },
                    },
                    "systemModules": {
                        "edgeAgent": {
                            "type": "docker",
                            "settings": {
                                "image": EDGE_AGENT_IMAGE,
                                "createOptions": "{}",
                            },
                        },
                        "edgeHub": {
                            "type": "docker",
                            "status": "running",
                            "restartPolicy": "always",
                            "startupOrder": 0,
                            "settings": {
                                "image": EDGE_HUB_IMAGE,
                                "createOptions": create_options(edge_hub_options),
                            },
                        },
                    },
                    "modules": {
                        opts.name: _scoring_module(opts),
                        AGENT_MODULE: _agent_module(opts),
                    },
                }
            },
            "$edgeHub": {
                "properties.desired": {
                    "schemaVersion": "1.1",
                    "routes": {
                        f"{AGENT_MODULE}ToUpstream": {
                            "route": _route(opts),
                            "priority": 0,
                            "timeToLiveSecs": opts.ttl_s,
                        }
                    },
                    "storeAndForwardConfiguration": {"timeToLiveSecs": opts.ttl_s},
                }
            },
            AGENT_MODULE: {"properties.desired": agent_desired(opts)},
        }
    }


def layered_manifest(opts: EdgeOptions) -> dict[str, Any]:
    """A layered deployment: only our modules, route and agent twin, by property path.

    It adds to the base deployment each device already has (which owns the system
    modules and runtime settings), as IoT Hub layered deployments require.
    """
    full = deployment_manifest(opts)["modulesContent"]
    agent = full["$edgeAgent"]["properties.desired"]
    hub = full["$edgeHub"]["properties.desired"]
    content: dict[str, Any] = {
        "$edgeAgent": {
            f"properties.desired.modules.{name}": module
            for name, module in agent["modules"].items()
        },
        "$edgeHub": {
            f"properties.desired.routes.{name}": route for name, route in hub["routes"].items()
        },
        AGENT_MODULE: full[AGENT_MODULE],
    }
    credentials = agent["runtime"]["settings"]["registryCredentials"]
    for key, creds in credentials.items():
        path = f"properties.desired.runtime.settings.registryCredentials.{key}"
        content["$edgeAgent"][path] = creds
    return {"modulesContent": content}


def resolve_references(manifest: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    """The manifest with every ``${VAR}`` replaced from the environment (for apply only)."""
    env = os.environ if environ is None else environ
    text = json.dumps(manifest)
    missing = sorted({m for m in _REF.findall(text) if m not in env})
    if missing:
        raise InvalidArgumentError(
            f"the manifest references unset environment variables: {', '.join(missing)}",
            hint="export them (registry credentials are never stored by amlpkg)",
        )
    return json.loads(_REF.sub(lambda m: json.dumps(env[m.group(1)])[1:-1], text))
