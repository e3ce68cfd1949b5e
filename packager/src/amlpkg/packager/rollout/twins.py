"""IoT Hub twin tags into the device records, so rollout fleets can select on them.

Twin ``tags`` are set on the service side (``az iot hub device-twin update --tags``,
the registry API) and never seen by the device, so they are read from the hub, not
from what devices report: one twin query (``SELECT * FROM devices``, paged), and each
device's record gets exactly the hub's tags (nested ones flattened with dots).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from amlpkg.collector.devices import flatten_tags, set_tags
from amlpkg.errors import AmlpkgError, FailedPreconditionError, UnavailableError
from amlpkg.store.workspace import Workspace

log = logging.getLogger(__name__)

CONNECTION_ENV = "AMLPKG_IOTHUB_CONNECTION_STRING"
QUERY = "SELECT * FROM devices"
PAGE = 1000


@dataclass
class TagImport:
    """What an import did: devices whose tags were copied, and those refused (why)."""

    imported: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def registry_from_env() -> Any:
    """An ``IoTHubRegistryManager`` from ``AMLPKG_IOTHUB_CONNECTION_STRING``."""
    text = os.environ.get(CONNECTION_ENV)
    if not text:
        raise FailedPreconditionError("no IoT Hub connection string", hint=f"set {CONNECTION_ENV}")
    from azure.iot.hub import IoTHubRegistryManager  # type: ignore[import-untyped]

    try:
        return IoTHubRegistryManager.from_connection_string(text)
    except Exception as exc:  # azure SDK: a malformed connection string
        raise FailedPreconditionError(
            f"the IoT Hub connection string is not usable: {exc}", hint=f"check {CONNECTION_ENV}"
        ) from None


def _twin_fields(twin: Any) -> tuple[str | None, dict[str, Any]]:
    if isinstance(twin, dict):
        return twin.get("deviceId"), twin.get("tags") or {}
    return getattr(twin, "device_id", None), getattr(twin, "tags", None) or {}


def twin_tag_pages(registry: Any, *, page: int = PAGE) -> Iterator[dict[str, dict[str, Any]]]:
    """The hub's twins' tags, one query page at a time: ``{device id: tags}`` (flattened)."""
    from azure.iot.hub.models import QuerySpecification  # type: ignore[import-untyped]

    token: str | None = None
    while True:
        try:
            answer = registry.query_iot_hub(QuerySpecification(query=QUERY), token, page)
        except Exception as exc:  # azure SDK / msrest errors: wrap at the boundary
            raise UnavailableError(
                f"IoT Hub refused the twin query: {exc}",
                hint="check the connection string's rights (registry read)",
            ) from exc
        found: dict[str, dict[str, Any]] = {}
        for twin in answer.items or []:
            device_id, tags = _twin_fields(twin)
            if device_id:
                found[device_id] = flatten_tags(dict(tags))
        yield found
        token = answer.continuation_token
        if not token:
            return


def replace_tags(ws: Workspace, tags: dict[str, dict[str, Any]]) -> TagImport:
    """Give each device exactly ``tags[device]``; one the records cannot hold (names, more
    than 64) is refused and named in the result, the others are written."""
    result = TagImport()
    for device_id, device_tags in tags.items():
        try:
            set_tags(ws, device_id, device_tags, replace=True)
        except AmlpkgError as exc:
            result.refused[device_id] = exc.message
            continue
        result.imported.append(device_id)
    return result


def import_twin_tags(ws: Workspace, registry: Any, *, page: int = PAGE) -> TagImport:
    """Copy every device twin's tags into its device record (see the module docstring)."""
    result = TagImport()
    for tags in twin_tag_pages(registry, page=page):
        done = replace_tags(ws, tags)
        result.imported += done.imported
        result.refused.update(done.refused)
    if result.refused:
        log.warning("twin tags not imported for %d devices", len(result.refused))
    return result
