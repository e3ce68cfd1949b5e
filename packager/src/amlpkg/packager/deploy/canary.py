"""Canaries: promote or roll back a ``--canary`` revision by a telemetry gate.

``deploy --target kubernetes --canary 10`` starts the new revision beside the serving
one (KServe ``canaryTrafficPercent``, or a ``NAME-canary`` Deployment behind the one
Service weighted by replicas) and keeps both ``ready``; ``--target docker`` does the
same with the weights of the deployment's proxy container. :func:`decide` evaluates the
same gate as fleet rollouts (:mod:`amlpkg.packager.rollout.spec`) on the runtimes'
telemetry, the canary revision's against the serving one's (rows keyed by deployment
id, as the runtime's OTLP resource attribute ``amlpkg.deployment`` sets them), ``drift``
included: the Jensen-Shannon distance of the two revisions' output histograms, which
runtimes started with output summaries export by OTLP (a deployment with a telemetry
endpoint turns them on, so both revisions of a canary count them). Then
:func:`promote` (the full manifests with the new image; the canary objects go) or
:func:`roll_back` (the canary objects go; KServe gets the old image back).
"""

from __future__ import annotations

import time
from typing import Any

from amlpkg.collector.windows import deployment_windows
from amlpkg.errors import FailedPreconditionError
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget, object_path
from amlpkg.packager.rollout.gate import DRIFT_MIN_OUTPUTS, drift, metrics
from amlpkg.packager.rollout.spec import parse_gate
from amlpkg.store.workspace import Workspace


def pending_canary(ws: Workspace, name: str) -> DeploymentRecord:
    """The undecided canary revision of deployment ``name``."""
    for record in reversed(records.history(ws, name)):
        canary = record.state.get("canary")
        if record.status == "ready" and canary and canary.get("decision") is None:
            return record
    raise FailedPreconditionError(
        f"{name} has no canary waiting for a decision",
        hint="deploy one with --target kubernetes (or docker) --canary PERCENT",
    )


def evaluate(ws: Workspace, name: str, gate: str, since: float | None = None) -> dict[str, Any]:
    """The gate's verdict on the canary against the serving revision (``decided`` False: no
    canary requests yet, or a ``drift`` check still short of output summaries: ``waiting``
    says which)."""
    checks = parse_gate(gate)
    canary = pending_canary(ws, name)
    stable_id = canary.state["canary"]["stable"]
    windows = deployment_windows(
        ws, canary.created if since is None else since, [canary.id, stable_id]
    )
    cohort = metrics(w for w in windows if w.device_id == canary.id)
    control = metrics(w for w in windows if w.device_id == stable_id)
    verdict: dict[str, Any] = {
        "canary": canary.id, "stable": stable_id, "cohort": cohort, "control": control,
        "decided": bool(cohort["requests"]), "failures": [],
    }  # fmt: skip
    cohort["drift"] = drift(cohort["output_bins"], control["output_bins"])
    control["drift"] = 0.0 if control["output_bins"] else None
    short = _short_of_summaries(cohort, control) if any(c.metric == "drift" for c in checks) else []
    if short:
        verdict.update(decided=False, waiting=short)
    if not verdict["decided"]:
        return verdict
    for check in checks:
        if check.metric == "swap_failures":
            continue  # a canary has no devices to swap: its pods are ready or not at all
        observed, bound = cohort.get(check.metric), check.bound(control.get(check.metric))
        if observed is None or bound is None or not check.passes(float(observed), bound):
            verdict["failures"].append(
                {"metric": check.metric, "check": check.text, "observed": observed, "bound": bound}
            )
    verdict["passed"] = not verdict["failures"]
    return verdict


def _short_of_summaries(cohort: dict[str, Any], control: dict[str, Any]) -> list[str]:
    """What a drift check still waits for: each revision needs DRIFT_MIN_OUTPUTS outputs."""
    return [
        f"{side} revision: {sum(m['output_bins'].values())} of {DRIFT_MIN_OUTPUTS} output"
        " summaries (its runtime exports them with --output-summaries and a telemetry endpoint)"
        for side, m in (("canary", cohort), ("serving", control))
        if sum(m["output_bins"].values()) < DRIFT_MIN_OUTPUTS
    ]


def promote(ws: Workspace, target: KubernetesTarget | None, name: str) -> DeploymentRecord:
    """Serve the canary everywhere: apply the promoted manifests, then drop the canary objects
    (docker: route everything to it, stop the old container). ``target`` None: the
    default Kubernetes client (a docker canary needs none)."""
    canary = pending_canary(ws, name)
    plan = canary.state["canary"]
    stable = records.get(ws, plan["stable"])
    if canary.target == "docker":
        _settle_docker(canary, stable, promote=True)
        objects: list[str] = []
    else:
        k8s = target or KubernetesTarget()
        for obj in plan["promote"]:
            k8s.apply_object(obj)
        if not plan["kserve"]:
            _delete(k8s, canary.state["objects"])
        objects = [object_path(o) for o in plan["promote"]]
    records.update(ws, stable.id, status="stopped", reason=f"replaced by canary {canary.id}")
    state = {**canary.state, "objects": objects, "canary": {**plan, "decision": "promoted"}}
    return records.update(ws, canary.id, state=state, reason=f"canary promoted at {time.ctime()}")


def roll_back(
    ws: Workspace, target: KubernetesTarget | None, name: str, why: str
) -> DeploymentRecord:
    """Take the canary out; the serving revision takes all traffic again."""
    canary = pending_canary(ws, name)
    plan = canary.state["canary"]
    if canary.target == "docker":
        _settle_docker(canary, records.get(ws, plan["stable"]), promote=False)
    elif plan["kserve"]:
        k8s = target or KubernetesTarget()
        for obj in plan["rollback"]:
            k8s.apply_object(obj)
    else:
        _delete(target or KubernetesTarget(), canary.state["objects"])
    state = {**canary.state, "objects": [], "canary": {**plan, "decision": "rolled_back"}}
    records.update(ws, canary.id, state=state)
    return records.update(ws, canary.id, status="stopped", reason=f"canary rolled back: {why}")


def decide(
    ws: Workspace,
    target: KubernetesTarget | None,
    name: str,
    gate: str,
    since: float | None = None,
) -> tuple[dict[str, Any], DeploymentRecord | None]:
    """Evaluate the gate and act on it; no decision (and no record) while there is no data."""
    verdict = evaluate(ws, name, gate, since)
    if not verdict["decided"]:
        return verdict, None
    if verdict["passed"]:
        return verdict, promote(ws, target, name)
    why = "; ".join(
        f"{f['check']} failed: {f['observed']} vs bound {f['bound']}" for f in verdict["failures"]
    )
    return verdict, roll_back(ws, target, name, why)


def _settle_docker(canary: DeploymentRecord, stable: DeploymentRecord, *, promote: bool) -> None:
    from amlpkg.packager.deploy.targets.docker import settle_canary

    settle_canary(canary, stable, promote=promote)


def _delete(target: KubernetesTarget, paths: list[str]) -> None:
    for path in paths:
        status, data = target._call("DELETE", path)
        if status >= 300 and status != 404:
            raise FailedPreconditionError(f"cannot delete {path}: {data.get('message', status)}")
