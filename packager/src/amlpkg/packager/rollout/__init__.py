"""Staged, metric-gated model rollouts to device fleets, with automatic rollback.

``create`` records the plan; :func:`~amlpkg.packager.rollout.driver.drive` moves it
stage by stage (desired state -> soak -> gate on collected telemetry); everything
lives in the workspace, so any process can drive, pause, resume or abort it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.rollout import records, twins
from amlpkg.packager.rollout.appliers import Applier, IotHubApplier, StandaloneApplier
from amlpkg.packager.rollout.driver import abort, drive, fleet, step
from amlpkg.packager.rollout.records import Rollout
from amlpkg.packager.rollout.spec import gate_text, parse_duration, parse_gate, parse_stages
from amlpkg.store.workspace import Workspace

TARGETS = ("standalone", "iotedge")
CONNECTION_ENV = twins.CONNECTION_ENV

__all__ = [
    "TARGETS",
    "Applier",
    "Rollout",
    "abort",
    "applier_for",
    "create",
    "drive",
    "fleet",
    "pinned_agent_image",
    "step",
]


def create(
    ws: Workspace,
    model_ref: str,
    *,
    fleet_condition: str,
    stages: str = "5%,25%,100%",
    gate: str = "p95_ms<=1.2*control,error_rate<0.01",
    soak: str = "10m",
    quorum: float = 0.8,
    max_wait: str | None = None,
    target: str = "standalone",
    model_url: str | None = None,
    desired_dir: Path | None = None,
    options: dict[str, Any] | None = None,
    registry: Any = None,
) -> Rollout:
    """Check the plan against the workspace and record it (the driver applies it).

    ``model_url``: where devices download the model (default: the registry's stored
    file as a ``file://`` URL, for devices sharing this machine's disk).
    ``max_wait``: how long past the soak a stage waits for a quorum (default: the soak).
    ``registry``: an IoT Hub registry client; when given (or, for an ``iotedge``
    rollout, when the connection string is set) the twins' tags are imported first,
    so ``tags.NAME`` terms see the hub's tags.
    """
    from amlpkg.trainer.registry import resolve_model_file

    if target not in TARGETS:
        raise InvalidArgumentError(f"unknown rollout target {target!r}", hint=f"use {TARGETS}")
    if not 0 < quorum <= 1:
        raise InvalidArgumentError(f"--quorum {quorum} must be in (0, 1]")
    version, model_file = resolve_model_file(model_ref, workspace=ws)
    opts: dict[str, Any] = dict(options or {})
    opts["desired"] = {
        "name": version.name,
        "version": str(version.version),
        "sha256": version.sha256,
        "url": model_url or model_file.resolve().as_uri(),
    }
    if target == "standalone":
        if desired_dir is None:
            raise InvalidArgumentError(
                "a standalone rollout needs --desired-dir",
                hint="the folder of per-device desired-state documents the agents poll",
            )
        opts["desired_dir"] = str(desired_dir.resolve())
    else:
        if "image" not in opts:
            raise InvalidArgumentError(
                "an IoT Edge rollout needs --image for its layered deployment"
            )
        opts["agent_image"] = pinned_agent_image(
            ws, opts.get("agent_image"), str(opts.get("platform") or "linux/amd64")
        )
    if registry is None and target == "iotedge" and os.environ.get(CONNECTION_ENV):
        registry = twins.registry_from_env()
    if registry is not None:
        twins.import_twin_tags(ws, registry)
    members = fleet(ws, fleet_condition)
    if not members:
        raise FailedPreconditionError(
            f"the fleet {fleet_condition!r} matches no device",
            hint="see `amlpkg devices list`; devices appear with their first telemetry",
        )
    soak_s = parse_duration(soak)
    return records.create(
        ws,
        model=version.ref,
        fleet=fleet_condition,
        stages=parse_stages(stages),
        gate=gate_text(parse_gate(gate)),
        soak_s=soak_s,
        quorum=quorum,
        max_wait_s=parse_duration(max_wait) if max_wait else max(soak_s, 30.0),
        target=target,
        options=opts,
    )


def pinned_agent_image(ws: Workspace, given: str | None, platform: str) -> str:
    """The agent image every stage's layer names, by digest: ``given`` resolved in its
    registry, else the newest agent image built and pushed here for ``platform``.

    Pinned once, when the rollout is created, so a tag moved meanwhile cannot put
    another agent on the later stages' devices.
    """
    from amlpkg.packager.deploy.options import IotEdgeOptions
    from amlpkg.packager.deploy.targets.iotedge import agent_image_for

    return agent_image_for(
        ws, IotEdgeOptions.model_validate({"agent_image": given, "platform": platform})
    )


def applier_for(rollout: Rollout, manager: Any = None) -> Applier:
    """The applier of the rollout's target (``manager``: an IoT Hub configuration client)."""
    if rollout.target == "standalone":
        return StandaloneApplier(Path(rollout.options["desired_dir"]))
    if manager is None:
        text = os.environ.get(CONNECTION_ENV)
        if not text:
            raise FailedPreconditionError(
                "no IoT Hub connection string", hint=f"set {CONNECTION_ENV}"
            )
        from azure.iot.hub import IoTHubConfigurationManager  # type: ignore[import-untyped]

        manager = IoTHubConfigurationManager.from_connection_string(text)
    return IotHubApplier(manager)
