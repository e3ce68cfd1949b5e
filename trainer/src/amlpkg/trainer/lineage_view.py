"""``lineage(ref)``: where a model version comes from and what was made from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlpkg.store.lineage_edges import downstream, edges_to
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import MODEL_VERSION_KIND, get_model_version, using_workspace
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs


def lineage(
    ref: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> dict[str, Any]:
    """The version ``ref`` names, the run that made it, and every edge from it onwards.

    Keys: ``model_version``, ``run`` (with params, final metrics, commit and
    artifacts; None when registered without a run), ``upstream`` (edges into
    the version) and ``downstream`` (every edge reachable from it: variants,
    packages, deployments, devices as later stages record them).
    """
    with using_workspace(workspace, home) as ws:
        version = get_model_version(ref, workspace=ws)
        run: dict[str, Any] | None = None
        if version.run_id is not None:
            record = queries.get_run(ws, version.run_id)
            run = record.to_dict()
            run["artifacts"] = store_runs.list_artifacts(ws, record.id)
        node = (MODEL_VERSION_KIND, version.ref)
        return {
            "model_version": version.to_dict(),
            "run": run,
            "upstream": [e.to_dict() for e in edges_to(ws, node)],
            "downstream": [e.to_dict() for e in downstream(ws, node)],
        }
