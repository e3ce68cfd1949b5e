"""The lineage chain with each later stage's key facts on its edges.

The trainer records and walks the edges; each packager stage (variants, packages,
deployments, devices) knows how to describe its own rows. ``describe`` asks each.
"""

from __future__ import annotations

from typing import Any

from amlpkg.trainer.store.workspace import Workspace


def describe(ws: Workspace, edges: list[dict[str, Any]]) -> None:
    """Set ``edge["detail"]`` on the edges whose stage has something to say."""
    from amlpkg.packager.deploy.records import describe_deployment_edges
    from amlpkg.packager.optimize.store import describe_edges as describe_variant_edges
    from amlpkg.packager.telemetry.lineage import describe_device_edges

    describe_variant_edges(ws, edges)
    describe_deployment_edges(ws, edges)
    describe_device_edges(ws, edges)
