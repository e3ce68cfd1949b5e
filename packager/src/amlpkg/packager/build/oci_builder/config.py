"""The image config: the same user, environment, command, ports, health check and labels
as the Docker builder's Dockerfile (taken from ``recipe``), written as sorted JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amlpkg.packager.build.flavors import Flavor
from amlpkg.packager.build.recipe import (
    GRPC_PORT,
    HEALTHCHECK_CODE,
    HTTP_PORT,
    METRICS_PORT,
    USER_ID,
    image_env,
    server_command,
)

_SECOND_NS = 1_000_000_000
# The Dockerfile's HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3.
HEALTHCHECK = {
    "Test": ["CMD", "python", "-c", HEALTHCHECK_CODE],
    "Interval": 10 * _SECOND_NS,
    "Timeout": 3 * _SECOND_NS,
    "StartPeriod": 30 * _SECOND_NS,
    "Retries": 3,
}
ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


@dataclass(frozen=True)
class Process:
    """What the image runs: its command, environment beside the flavor's, ports, health check."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    healthcheck: dict[str, Any] | None = None


def scoring_process() -> Process:
    """The scoring server, as the Docker builder's Dockerfile runs it."""
    return Process(server_command(), ports=(HTTP_PORT, GRPC_PORT, METRICS_PORT),
                   healthcheck=HEALTHCHECK)  # fmt: skip


def rfc3339(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of ``epoch``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def env_of(
    flavor: Flavor, python_version: str, *, require_signature: bool = False
) -> dict[str, str]:
    """The Docker builder's ``ENV`` lines as a mapping."""
    env: dict[str, str] = {}
    for line in image_env(flavor, python_version, require_signature=require_signature):
        key, _, value = line.removeprefix("ENV ").partition("=")
        env[key] = json.loads(value)
    return env


def merged_env(base: list[str], ours: dict[str, str]) -> list[str]:
    """The base's ``KEY=value`` list with ours set over it (order: base keys, then new)."""
    merged = dict(item.split("=", 1) for item in base if "=" in item)
    merged.update(ours)
    return [f"{key}={value}" for key, value in merged.items()]


def image_config(
    *,
    base_config: dict[str, Any],
    platform: str,
    flavor: Flavor,
    python_version: str,
    labels: dict[str, str],
    diff_ids: list[str],
    history: list[str],
    epoch: int,
    require_signature: bool = False,
    process: Process | None = None,
) -> bytes:
    """The config blob: the base's rootfs and history followed by our layers.

    ``process``: what the image runs (default: the scoring server).
    """
    process = process or scoring_process()
    created = rfc3339(epoch)
    base_inner = base_config.get("config") or {}
    env = env_of(flavor, python_version, require_signature=require_signature) | process.env
    config: dict[str, Any] = {
        "User": f"{USER_ID}:{USER_ID}",
        "Env": merged_env(list(base_inner.get("Env") or []), env),
        "Cmd": process.command,
        "Labels": dict(sorted(labels.items())),
        "WorkingDir": "/",
    }
    if process.ports:
        config["ExposedPorts"] = {f"{port}/tcp": {} for port in process.ports}
    if process.healthcheck is not None:
        config["Healthcheck"] = process.healthcheck
    base_rootfs = base_config.get("rootfs") or {}
    base_history = list(base_config.get("history") or [])
    if not base_history:
        base_history = [{"created": created, "comment": "base image"}] * len(
            base_rootfs.get("diff_ids") or []
        )
    document = {
        "architecture": ARCH[platform],
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {
            "type": "layers",
            "diff_ids": [*(base_rootfs.get("diff_ids") or []), *diff_ids],
        },
        "history": [
            *base_history,
            *({"created": created, "created_by": f"amlpkg build --builder oci: {step}"}
              for step in history),
            {"created": created, "created_by": "amlpkg build --builder oci: config",
             "empty_layer": True},
        ],
    }  # fmt: skip
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
