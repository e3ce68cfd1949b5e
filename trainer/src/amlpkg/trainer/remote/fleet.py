"""Deployments, telemetry and devices read from a team server, as the embedded path shows them.

The CLI's ``deployments list|show``, ``telemetry show`` and ``devices list|show``
call :func:`open_fleet`: ``None`` means the embedded workspace, else a
:class:`FleetClient` whose answers have the same keys as the records' ``to_dict()``
on the embedded path, so one rendering function serves both. What a server keeps
to itself (a deployment's ``config`` and ``state``: paths and process ids on the
machine that deployed) is not in its answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from amlpkg.errors import NotFoundError
from amlpkg.trainer.remote.config import tracking_server

Json = dict[str, Any]
SUMMARY_GROUPS = ("deployment", "device")


def deployment_view(name: str, history: list[Json]) -> Json:
    """``deployments show --json``: the serving revision (newest ``ready``) and the history."""
    if not history:
        raise NotFoundError(f"no deployment {name!r}", hint="see `amlpkg deployments list`")
    serving = next((r for r in history if r["status"] == "ready"), None)
    return {
        "name": name,
        "serving": serving,
        "endpoints": None if serving is None else serving["endpoints"],
        "history": history,
    }


class FleetClient:
    """The read routes of deployments, telemetry summaries and device records."""

    def __init__(self, client: Any) -> None:  # a TeamClient (httpx loads only when used)
        self.client = client
        self.where = client.server.url

    def _get(self, path: str, **params: Any) -> Any:
        given = {k: v for k, v in params.items() if v is not None}
        return self.client.request("GET", path, params=given).json()

    def list_deployments(self) -> list[Json]:
        """The newest revision of every deployment, by name."""
        return list(self._get("/deployments"))

    def show_deployment(self, name: str) -> Json:
        """As :func:`deployment_view`."""
        return deployment_view(name, list(self._get(f"/deployments/{quote(name, safe='')}")))

    def summaries(self, by: str, key: str | None, since: float | None) -> list[Json]:
        """Telemetry totals per ``deployment`` or ``device`` (optionally one), since a time."""
        when = None if since is None else f"{since:.6f}"
        if by == "deployment":
            return list(self._get("/telemetry/deployments", deployment=key, since=when))
        if key is None:
            return list(self._get("/devices", since=when))
        try:
            return [dict(self._get(f"/devices/{quote(key, safe='')}", since=when))]
        except NotFoundError:  # the embedded path answers no rows for a silent device
            return []

    def list_devices(self) -> list[Json]:
        """Every device record: desired and reported model, deployment, last telemetry."""
        return list(self._get("/device-records"))

    def get_device(self, device_id: str) -> Json:
        """One device record."""
        return dict(self._get(f"/device-records/{quote(device_id, safe='')}"))


@contextmanager
def open_fleet(
    home: str | Path | None = None, tracking_uri: str | None = None
) -> Iterator[FleetClient | None]:
    """A :class:`FleetClient` when the settings select a team server, else None."""
    server = tracking_server(home, tracking_uri)
    if server is None:
        yield None
        return
    from amlpkg.trainer.remote.client import TeamClient

    with TeamClient(server) as client:
        yield FleetClient(client)
