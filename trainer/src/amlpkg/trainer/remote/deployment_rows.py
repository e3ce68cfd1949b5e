"""Deployment rows on a team server, whole: read before a deploy made here, written as it goes.

``amlpkg deploy`` against a server acts on the target from the user's machine; these
calls keep the server's rows of the deployment (with the ``config`` and ``state`` the
target needs for ``status``, ``delete`` and ``rollback``) in step. Contributor routes:
the server checks each body and audits each change.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from amlpkg.trainer.remote.client import TeamClient

Json = dict[str, Any]


def _path(name: str) -> str:
    return f"/deployments/{quote(name, safe='')}/revisions"


def list_revisions(client: TeamClient, name: str) -> list[Json]:
    """Every revision of ``name`` with its config and state, newest first ([] if none)."""
    return list(client.request("GET", _path(name)).json())


def create_revision(client: TeamClient, name: str, row: Json) -> Json:
    """Record revision ``row["revision"]`` of ``name`` (refused unless it is the next)."""
    return dict(client.request("POST", _path(name), json=row, idempotent=False).json())


def update_revision(client: TeamClient, name: str, revision: int, row: Json) -> Json:
    """Move a revision on: its status (with reason), state, endpoints and image digest."""
    url = f"{_path(name)}/{int(revision)}"
    return dict(client.request("PATCH", url, json=row, idempotent=True).json())
