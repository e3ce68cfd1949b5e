"""``amlpkg deploy``: targets, deployment records, verification and blue/green.

The functions here are the library the CLI delegates to (see ``api.py``).
"""

from __future__ import annotations

from amlpkg.packager.deploy.api import (
    delete,
    deploy,
    list_deployments,
    plan,
    quickstart_step,
    rollback,
    show,
    status,
)

__all__ = [
    "delete",
    "deploy",
    "list_deployments",
    "plan",
    "quickstart_step",
    "rollback",
    "show",
    "status",
]
