"""Evaluate a stage's gate from collected telemetry: cohort against control.

Each cohort device is, by its telemetry since its desired state changed:

- ``swapped``: its latest window reports the new model;
- ``failed``: it still (or again) reports another model half a soak after the change,
  so the swap failed or was undone on the device; it counts against ``swap_failures``;
- ``offline``: nothing heard since the change; it does not count toward the quorum.

The gate is decided once the soak is over and the share of cohort devices heard
from reaches the quorum; when ``max_wait_s`` more passes without a quorum, the stage
fails. Metrics are taken over the windows since the stage was applied: latency
percentiles as the request-weighted mean of the windows' values, the error rate as
errors over requests, ``drift`` as the Jensen-Shannon distance between the summed
output histograms of the cohort (new model) and of the control group, decided only
once each side has :data:`DRIFT_MIN_OUTPUTS` summarized outputs. The control group
is the fleet's devices not on the new model; with none left (the last stage), the
control values of the previous gate are used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from amlpkg.collector import outputs
from amlpkg.collector.windows import DeviceWindow
from amlpkg.packager.rollout.spec import Check

DRIFT_MIN_OUTPUTS = 20
"""Output summaries each side needs before ``drift`` is computed (fewer: too noisy)."""
_LATENCY = {
    "p50_ms": "latency_p50_ms",
    "p95_ms": "latency_p95_ms",
    "p99_ms": "latency_p99_ms",
    "avg_ms": "latency_avg_ms",
}


def metrics(windows: Iterable[DeviceWindow]) -> dict[str, Any]:
    """Requests, errors, error rate and latencies of a set of windows."""
    rows = list(windows)
    requests = sum(w.requests for w in rows)
    errors = sum(w.errors for w in rows)
    out: dict[str, Any] = {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
    }
    for name, attr in _LATENCY.items():
        weighted = [(getattr(w, attr), w.requests) for w in rows if getattr(w, attr) is not None]
        weight = sum(n for _, n in weighted)
        out[name] = round(sum(v * n for v, n in weighted) / weight, 3) if weight else None
    out["output_bins"] = outputs.merge(w.outputs for w in rows)
    return out


def drift(cohort_bins: dict[str, int] | None, control_bins: dict[str, int] | None) -> float | None:
    """Jensen-Shannon distance of two output histograms (None: too few outputs on a side)."""
    sides = (cohort_bins or {}, control_bins or {})
    if any(sum(side.values()) < DRIFT_MIN_OUTPUTS for side in sides):
        return None
    value = outputs.js_distance(*sides)
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class CohortDevice:
    """A cohort device and when its desired state changed."""

    device_id: str
    applied_at: float


def classify(
    device: CohortDevice, windows: list[DeviceWindow], new_model: str, grace_s: float
) -> str:
    """``swapped``, ``failed`` or ``offline`` (see the module docstring)."""
    mine = [
        w for w in windows if w.device_id == device.device_id and w.received >= device.applied_at
    ]
    if not mine:
        return "offline"
    if mine[-1].model == new_model:
        return "swapped"
    late = [w for w in mine if w.received >= device.applied_at + grace_s]
    return "failed" if late else "offline"


def evaluate(
    *,
    checks: list[Check],
    cohort: list[CohortDevice],
    control_ids: set[str],
    windows: list[DeviceWindow],
    new_model: str,
    stage_applied_at: float,
    soak_s: float,
    quorum: float,
    max_wait_s: float,
    baseline: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The gate's verdict: ``decided`` (False: wait), ``passed``, failures and the numbers."""
    states = {d.device_id: classify(d, windows, new_model, soak_s / 2) for d in cohort}
    heard = [d for d, s in states.items() if s != "offline"]
    swapped = sorted(d for d, s in states.items() if s == "swapped")
    failed = sorted(d for d, s in states.items() if s == "failed")
    share = len(heard) / len(cohort) if cohort else 1.0
    verdict: dict[str, Any] = {
        "devices": states,
        "quorum": {"heard": len(heard), "of": len(cohort), "needed": quorum},
        "decided": False,
        "passed": None,
        "failures": [],
    }
    if now < stage_applied_at + soak_s:
        return verdict
    if share < quorum:
        if now < stage_applied_at + soak_s + max_wait_s:
            return verdict
        verdict.update(decided=True, passed=False)
        verdict["failures"].append(
            {
                "metric": "quorum",
                "observed": round(share, 3),
                "bound": quorum,
                "devices": sorted(d for d, s in states.items() if s == "offline"),
            }
        )
        return verdict
    recent = [w for w in windows if w.received >= stage_applied_at]
    new_rows = [w for w in recent if w.device_id in set(swapped) and w.model == new_model]
    cohort_m = metrics(new_rows)
    control_m = metrics(w for w in recent if w.device_id in control_ids)
    if not control_m["requests"] and baseline:
        control_m = {**baseline, "from_previous_stage": True}
    cohort_m["drift"] = drift(cohort_m["output_bins"], control_m.get("output_bins"))
    control_m["drift"] = 0.0 if control_m.get("output_bins") else None
    cohort_m["swap_failures"] = len(failed) / len(heard) if heard else 0.0
    verdict.update(cohort=cohort_m, control=control_m, decided=True)
    for check in checks:
        failure = _check(
            check,
            cohort_m=cohort_m,
            control_m=control_m,
            rows=new_rows,
            swapped=swapped,
            failed=failed,
        )
        if failure is not None:
            verdict["failures"].append(failure)
    verdict["passed"] = not verdict["failures"]
    return verdict


def _check(
    check: Check,
    *,
    cohort_m: dict[str, Any],
    control_m: dict[str, Any],
    rows: list[DeviceWindow],
    swapped: list[str],
    failed: list[str],
) -> dict[str, Any] | None:
    """None when ``check`` holds, else what failed and on which devices."""
    observed = cohort_m.get(check.metric)
    control = control_m.get(check.metric)
    bound = check.bound(control)
    base = {"metric": check.metric, "check": check.text, "observed": observed, "bound": bound}
    if check.metric == "swap_failures":
        return None if check.passes(float(observed or 0.0), None) else {**base, "devices": failed}
    if observed is None or bound is None:
        what = "cohort" if observed is None else "control group"
        why = f"no requests in the {what}'s telemetry"
        if check.metric == "drift":
            why = f"fewer than {DRIFT_MIN_OUTPUTS} output summaries from the cohort or control"
        return {**base, "devices": swapped, "why": why}
    if check.passes(float(observed), control):
        return None
    offenders = []
    for device in swapped:
        own_m = metrics(w for w in rows if w.device_id == device)
        own = (
            drift(own_m["output_bins"], control_m.get("output_bins"))
            if check.metric == "drift"
            else own_m.get(check.metric)
        )
        if own is not None and not check.passes(float(own), control):
            offenders.append(device)
    return {**base, "devices": offenders or swapped}
