"""How a stage's decision reaches the devices: the desired state, per target.

- ``standalone``: one desired-state document per device (``<desired_dir>/<id>.json``,
  what ``amlpkg-edge-agent --standalone URL`` polls, served by
  :func:`amlpkg.packager.rollout.desired_http.serving_desired`). A stage rewrites
  the cohort's documents with the new model; a rollback writes back what was there.
- ``iotedge``: one IoT Hub layered deployment per stage whose target condition names
  the stage's devices (``deviceId='a' OR ...``), built by
  :func:`amlpkg.packager.deploy.iotedge_manifest.layered_manifest` at a priority above
  the base deployment, naming the edge agent image by the digest pinned when the
  rollout was created; a rollback deletes the rollout's layers, so the base layer's
  model is the devices' desired model again.

Devices that are offline read the decision from their desired state when they return.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from amlpkg.errors import AmlpkgError, InvalidArgumentError, UnavailableError
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.packager.rollout.records import Rollout, RolloutDevice

_DEVICE_ID_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:")


class Applier(Protocol):
    """Writes a rollout's decisions into the devices' desired state."""

    def previous(self, device_id: str) -> dict[str, Any]:
        """What to put back on rollback (read before the stage changes anything)."""
        ...

    def apply_stage(self, rollout: Rollout, stage: int, device_ids: list[str]) -> None:
        """Make the new model desired on ``device_ids`` (idempotent: a resumed driver repeats)."""
        ...

    def roll_back(self, rollout: Rollout, devices: list[RolloutDevice]) -> None:
        """Make each device's previous desired state current again (idempotent)."""
        ...


def _check_device_id(device_id: str) -> str:
    # The id becomes a file name and part of an IoT Hub condition: refuse what could escape.
    if not device_id or not set(device_id) <= _DEVICE_ID_SAFE or device_id.startswith("."):
        raise InvalidArgumentError(f"device id {device_id!r} has characters a rollout refuses")
    return device_id


class StandaloneApplier:
    """Per-device desired-state documents in a folder."""

    def __init__(self, desired_dir: Path) -> None:
        self.desired_dir = desired_dir

    def path(self, device_id: str) -> Path:
        """The document of ``device_id``."""
        return self.desired_dir / f"{_check_device_id(device_id)}.json"

    def previous(self, device_id: str) -> dict[str, Any]:
        """The device's document now (empty when it has none)."""
        try:
            data = json.loads(self.path(device_id).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UnavailableError(f"cannot read the desired state of {device_id}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _write(self, device_id: str, document: dict[str, Any]) -> None:
        # Atomic: an agent polling mid-write reads the old or the new document, never half.
        self.desired_dir.mkdir(parents=True, exist_ok=True)
        path = self.path(device_id)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
        os.replace(tmp, path)

    def apply_stage(self, rollout: Rollout, stage: int, device_ids: list[str]) -> None:
        """Replace the ``model`` of each cohort document, keeping its other keys."""
        for device_id in device_ids:
            self._write(
                device_id, {**self.previous(device_id), "model": rollout.options["desired"]}
            )

    def roll_back(self, rollout: Rollout, devices: list[RolloutDevice]) -> None:
        """Write each device's previous document back."""
        for device in devices:
            self._write(device.device_id, device.previous)


def target_condition(device_ids: list[str]) -> str:
    """An IoT Hub target condition naming exactly these devices."""
    return " OR ".join(f"deviceId='{_check_device_id(d)}'" for d in sorted(device_ids))


class IotHubApplier:
    """Layered deployments through an ``IoTHubConfigurationManager`` (azure-iot-hub)."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def previous(self, device_id: str) -> dict[str, Any]:
        """Nothing to keep: deleting the rollout's layers restores the base deployment."""
        return {}

    @staticmethod
    def configuration_id(rollout: Rollout, stage: int) -> str:
        """The layered deployment of one stage."""
        return f"{rollout.id}-s{stage + 1}"

    def manifest(self, rollout: Rollout) -> dict[str, Any]:
        """The layered manifest: our modules and the agent twin naming the new model."""
        opts = rollout.options
        if "@sha256:" not in str(opts["agent_image"]):
            raise InvalidArgumentError(
                f"the rollout's agent image {opts['agent_image']!r} is not pinned by digest",
                hint="create the rollout again: it pins --agent-image (or the newest built)",
            )
        return edge.layered_manifest(
            edge.EdgeOptions(
                name=str(opts.get("name") or rollout.id),
                image=str(opts["image"]),
                model=dict(opts["desired"]),
                agent_image=str(opts["agent_image"]),
                labels={"amlpkg.ai/model": rollout.model, "amlpkg.ai/rollout": rollout.id},
                deployment_id=opts.get("deployment_id"),
            )
        )

    def apply_stage(self, rollout: Rollout, stage: int, device_ids: list[str]) -> None:
        """Create the stage's layer (an existing one, from a resumed driver, is kept)."""
        from azure.iot.hub.models import (  # type: ignore[import-untyped]
            Configuration,
            ConfigurationContent,
        )

        config_id = self.configuration_id(rollout, stage)
        if config_id in self._existing():
            return
        manifest = edge.resolve_references(self.manifest(rollout))
        self._call(
            self.manager.create_configuration,
            Configuration(
                id=config_id,
                schema_version="1.0",
                labels={"amlpkg-rollout": rollout.id, "stage": str(stage + 1)},
                content=ConfigurationContent(modules_content=manifest["modulesContent"]),
                target_condition=target_condition(device_ids),
                priority=int(rollout.options.get("priority", 100)),
            ),
        )

    def roll_back(self, rollout: Rollout, devices: list[RolloutDevice]) -> None:
        """Delete every layer of this rollout."""
        existing = self._existing()
        for stage in range(len(rollout.stages)):
            config_id = self.configuration_id(rollout, stage)
            if config_id in existing:
                self._call(self.manager.delete_configuration, config_id)

    def _existing(self) -> set[str]:
        return {str(c.id) for c in self._call(self.manager.get_configurations) or []}

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except AmlpkgError:
            raise
        except Exception as exc:  # azure SDK / msrest errors: wrap at the boundary
            raise UnavailableError(
                f"IoT Hub refused the rollout's layered deployment: {exc}",
                hint="check the connection string's rights (service + registry write)",
            ) from exc
