"""The main job end to end: train -> register -> optimize -> build -> deploy -> score -> telemetry.

The training half lives in :mod:`amlpkg.trainer.quickstart` (it may not import the
packager); this module adds the later links of the lineage chain, each one a call
of the same library functions the CLI commands use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlpkg.errors import AmlpkgError

DEPLOYMENT = "quickstart"
TELEMETRY_WAIT_S = 15.0


@dataclass
class MainJobResult:
    """What the main job made, for the CLI to print."""

    model_ref: str
    lineage: dict[str, Any]
    telemetry: list[Any] = field(default_factory=list)


def _quiet(message: str) -> None:
    """Default step callback: say nothing."""


def run_main_job(
    home: str | Path | None = None,
    *,
    model_name: str = "iris-classifier",
    build: bool = True,
    deploy: bool = True,
    on_step: Callable[[str], None] = _quiet,
) -> MainJobResult:
    """Run every stage on the embedded workspace; stages that need Docker say so when it's absent.

    The local deployment is verified, scored over HTTP and gRPC, sends its traces to a
    collector running in this process, and is stopped at the end (the records stay).
    """
    from amlpkg.packager.optimize import optimize
    from amlpkg.store.lineage_edges import describe
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.lineage_view import lineage
    from amlpkg.trainer.quickstart import run_quickstart

    trained = run_quickstart(home, model_name=model_name, on_step=on_step)
    ref = trained.model_version.ref
    with open_workspace(home) as ws:
        report = optimize(ref, target="cpu", auto=True, workspace=ws)
        accepted = sum(1 for v in report.variants if v.accepted)
        chosen = report.choice or "the original model (no variant beat it)"
        on_step(f"optimized for cpu: {accepted} of {len(report.variants)} variants accepted;"
                f" chosen: {chosen}")  # fmt: skip
        if build:
            from amlpkg.packager.build.quickstart import quickstart_step as build_step

            on_step(build_step(ws, ref))
        result = MainJobResult(ref, {})
        if deploy:
            result.telemetry = _deploy_score_and_collect(ws, ref, on_step)
        result.lineage = lineage(ref, workspace=ws)
        describe(ws, result.lineage["downstream"])
    return result


def _deploy_score_and_collect(ws: Any, ref: str, on_step: Callable[[str], None]) -> list[Any]:
    from amlpkg.collector.server import running_collector
    from amlpkg.collector.summary import summarize
    from amlpkg.packager.deploy import api

    with running_collector(ws, port=0) as collector:
        endpoint = collector.url
        try:
            _, _, message = api.quickstart_step(
                ws, ref, name=DEPLOYMENT, options={"telemetry_endpoint": endpoint}
            )
            on_step(message)
            deployment_id = api.status(DEPLOYMENT, workspace=ws)["id"]
            deadline = time.monotonic() + TELEMETRY_WAIT_S
            rows: list[Any] = []
            while time.monotonic() < deadline:
                rows = summarize(ws, by="deployment", key=deployment_id)
                if rows:
                    break
                time.sleep(0.5)
            on_step(
                f"telemetry from {deployment_id} reached the collector at {endpoint}"
                if rows
                else f"no telemetry from {deployment_id} within {TELEMETRY_WAIT_S:.0f} s"
            )
        finally:
            try:
                api.delete(DEPLOYMENT, workspace=ws)
                on_step(f"stopped deployment {DEPLOYMENT!r} (its records stay in the lineage)")
            except AmlpkgError as exc:  # nothing was deployed: the error above says why
                on_step(f"nothing to stop: {exc.message}")
    return rows
