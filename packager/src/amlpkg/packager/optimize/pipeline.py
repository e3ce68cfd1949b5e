"""``optimize(ref)``: make, measure, check and register the variants of a model version.

Everything that can be refused (target, precision, the model ref, the sample
files) is checked before any variant is made, and rows are written in one
transaction at the end, so a bad input or a failure stores nothing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize import data, measure
from amlpkg.packager.optimize.judge import Limits, choose, decide
from amlpkg.packager.optimize.options import OptimizeFields, OptimizeOptions
from amlpkg.packager.optimize.recipe import GRAPH, ORT_PROVIDERS, VariantSpec, plan
from amlpkg.packager.optimize.report import OptimizeReport
from amlpkg.packager.optimize.signing import sign_variants
from amlpkg.packager.optimize.store import Variant, new_variant_id
from amlpkg.packager.optimize.stores import OptimizeStore, WorkspaceStore
from amlpkg.packager.optimize.transform import VariantNotApplicable, make_variant
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, using_workspace
from amlpkg.trainer.signing import load_signer

CPU = ORT_PROVIDERS["cpu"]
ORIGINAL = "original"


@dataclass(frozen=True)
class _Plan:
    """The inputs every variant of one ``optimize`` call shares."""

    version: ModelVersion
    sample: data.Sample
    calibration: data.Sample | None
    sizes: tuple[int, ...]
    chunk: int
    provider: str
    measured: bool
    budget_s: float


def _prepare(
    store: OptimizeStore,
    ref: str,
    specs: list[VariantSpec],
    *,
    validation: Path | None,
    calibration: Path | None,
    batch_sizes: tuple[int, ...],
    budget_s: float,
) -> _Plan:
    """Resolve the model and read the samples: every refusal happens here, before any work."""
    version = store.model_version(ref)
    signature = version.signature
    for spec_input in signature["inputs"]:
        data.input_dtype(spec_input)
    sample = (
        data.load_npz(Path(validation), signature)
        if validation is not None
        else data.synthesize(signature)
    )
    calib: data.Sample | None = None
    if any(s.needs_calibration for s in specs):
        if calibration is not None:
            calib = data.load_npz(Path(calibration), signature, role="calibration")
        else:
            # A sample the run kept beats the validation file; synthetic comes last.
            calib = store.run_sample(version) or sample
    fixed = data.fixed_batch(signature)
    provider = specs[0].measured_provider
    return _Plan(
        version=version,
        sample=sample,
        calibration=calib,
        sizes=(fixed,) if fixed is not None else tuple(batch_sizes),
        chunk=fixed or 256,
        provider=provider,
        measured=provider in measure.available_providers(),
        budget_s=budget_s,
    )


def _measure_all(original: Path, made: dict[str, Path], p: _Plan) -> dict[str, dict[str, Any]]:
    """Load time and interleaved latency/throughput of the original and every variant."""
    sessions: dict[str, Any] = {}
    loads: dict[str, float] = {}
    for key, path in {ORIGINAL: original, **made}.items():
        sessions[key], loads[key] = measure.open_session(path, p.provider)
    timings = measure.time_interleaved(sessions, p.sample, p.sizes, budget_s=p.budget_s)
    return {
        key: {"provider": p.provider, "load_ms": round(loads[key], 2), "batches": timings[key]}
        for key in sessions
    }


def optimize(
    ref: str,
    options: OptimizeOptions | None = None,
    *,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    on_step: Callable[[str], None] | None = None,
    sign_key: Path | None = None,
    **fields: Unpack[OptimizeFields],
) -> OptimizeReport:
    """Make the ``target`` variants of the version ``ref``, measure, check and register them.

    ``options`` (:class:`OptimizeOptions`), or its fields given one by one as keywords
    (``target="cuda", auto=True``; they replace those of ``options``).
    ``validation``/``calibration`` are ``.npz`` files (one array per input, ``y``
    for labels); without them the sample is synthetic (said in the report).
    ``auto`` marks the best accepted variant as chosen for ``target``.
    ``sign_key``: sign every accepted variant with this PEM EC key (read first, so a
    bad key fails before any work).
    """
    opts = (options or OptimizeOptions()).with_fields(**fields)
    signer = load_signer(sign_key) if sign_key is not None else None
    with using_workspace(workspace, home) as ws:
        report = optimize_in(WorkspaceStore(ws), ref, opts, on_step=on_step)
        if signer is not None:
            if on_step is not None:
                on_step("signing the accepted variants")
            signed = sign_variants(ws, report, signer)
            report.signatures = {r.ref: r.record_sha256 for r in signed}
        return report


def optimize_in(
    store: OptimizeStore,
    ref: str,
    options: OptimizeOptions,
    *,
    on_step: Callable[[str], None] | None = None,
) -> OptimizeReport:
    """:func:`optimize` reading the model from ``store`` and recording the variants there."""
    target = options.target
    limits = options.limits or Limits()
    specs = plan(target, options.precision)
    step = on_step or (lambda _text: None)
    p = _prepare(
        store,
        ref,
        specs,
        validation=options.validation,
        calibration=options.calibration,
        batch_sizes=options.batch_sizes,
        budget_s=options.budget_s,
    )
    note = None if p.measured else _not_measurable(p.provider, target)
    report = OptimizeReport(
        model=p.version.ref,
        target=target,
        provider=p.provider,
        measured=p.measured,
        measure_note=note,
        validation=p.sample.source,
        synthetic_validation=p.sample.synthetic,
        calibration=None if p.calibration is None else p.calibration.source,
        baseline={},
    )
    with tempfile.TemporaryDirectory(prefix="amlpkg-optimize-") as tmp:
        original = Path(tmp) / "original.onnx"
        store.copy_model_file(p.version, original)
        step("running the original on the validation sample")
        session, _ = measure.open_session(original, CPU)
        reference = measure.run_sample(session, p.sample, p.chunk)
        _check_labels(p.sample, reference)
        spec_of: dict[str, VariantSpec] = {}
        paths: dict[str, Path] = {}
        timings: dict[str, dict[str, Any]] = {}
        for spec in specs:
            step(f"making {spec.kind} {spec.precision} and checking its accuracy")
            made = _make_one(store, spec, p, original, Path(tmp))
            if isinstance(made, dict):
                report.skipped.append(made)
                continue
            variant, path = made
            paths[variant.id], spec_of[variant.id] = path, spec
            variant.accuracy = _accuracy(path, spec, reference, p.sample, p.chunk)
            report.variants.append(variant)
        if report.measured:
            step(f"measuring the original and {len(paths)} variants on {p.provider}")
            try:
                timings = _measure_all(original, paths, p)
            except measure.ProviderUnavailable as exc:
                report.measured = False
                report.measure_note = note = _not_measurable(p.provider, target, exc.message)
        if report.measured:
            report.baseline = timings[ORIGINAL]
            own = measure.compare(reference, reference, p.sample.labels)
            if "accuracy_original" in own:
                report.baseline["accuracy"] = own["accuracy_original"]
    for variant in report.variants:
        if report.measured:
            variant.measurements = timings[variant.id]
            variant.measurements["speedup"] = round(
                measure.speedup(report.baseline["batches"], variant.measurements["batches"]),
                4,
            )
        else:
            variant.measurements = {"provider": p.provider, "not_measured": note}
        variant.accepted, variant.reason = decide(
            spec_of[variant.id], variant, limits, None if report.measured else p.provider
        )
    if options.auto:
        report.chosen, report.choice = choose(report.variants, target)
        if report.chosen is not None:
            # The row keeps why it was chosen, not only that it was.
            report.chosen.chosen = True
            report.chosen.reason = f"chosen by --auto: {report.choice}"
    now = time.time()
    for variant in report.variants:
        variant.created = now
    store.record(report.variants)
    return report


def _not_measurable(provider: str, target: str, why: str | None = None) -> str:
    available = ", ".join(measure.available_providers())
    reason = why or f"{provider} is not available on this machine (available: {available})"
    return (
        f"cannot measure here: {reason}; run amlpkg optimize --target {target} on a machine"
        " that has it. Variants are made and checked for accuracy on the CPU, but none is"
        " accepted without its own measurements."
    )


def _check_labels(sample: data.Sample, reference: dict[str, Any]) -> None:
    """Labels must be comparable with the model's predicted labels."""
    if sample.labels is None:
        return
    predicted = measure.predictions(reference)
    if predicted is None:
        raise InvalidArgumentError(
            f"{sample.source} has labels 'y' but the model has no label or score output"
            " to compare them with",
            hint="drop 'y' for a model that is not a classifier",
        )
    if (predicted.dtype.kind in "USO") != (sample.labels.dtype.kind in "USO"):
        raise InvalidArgumentError(
            f"{sample.source}: labels 'y' are {sample.labels.dtype} but the model predicts"
            f" {predicted.dtype}",
            hint="save the labels as the model predicts them (class indices or names)",
        )


def _make_one(
    store: OptimizeStore, spec: VariantSpec, p: _Plan, original: Path, tmp: Path
) -> tuple[Variant, Path] | dict[str, str]:
    """Make one variant's file and store it; a dict saying why when it does not apply."""
    path = tmp / f"{spec.kind}-{spec.precision}.onnx"
    try:
        recipe = make_variant(spec, original, path, p.calibration, p.chunk)
    except VariantNotApplicable as exc:
        return {"kind": spec.kind, "precision": spec.precision, "reason": exc.message}
    digest, size = store.put_file(path)
    variant = Variant(
        id=new_variant_id(p.version.ref, spec.target, spec.kind, spec.precision),
        parent=p.version.ref,
        kind=spec.kind,
        target=spec.target,
        precision=spec.precision,
        sha256=digest,
        size=size,
        providers=[dict(p) for p in spec.providers],
        measurements={},
        accuracy={},
        recipe=recipe,
        accepted=False,
        reason="",
    )
    return variant, path


def _accuracy(
    path: Path,
    spec: VariantSpec,
    reference: dict[str, Any],
    sample: data.Sample,
    chunk: int,
) -> dict[str, Any]:
    """Errors against the original, computed with the CPU provider."""
    if spec.kind == GRAPH and spec.precision != "fp32":
        return {
            "checked": False,
            "note": f"{spec.precision} is applied by {spec.providers[0]['name']} at load;"
            " only measurable there",
        }
    try:
        session, _ = measure.open_session(path, CPU)
        got = measure.run_sample(session, sample, chunk)
    except InvalidArgumentError as exc:
        return {"checked": False, "note": f"cannot run on the CPU here: {exc.message}"}
    result = measure.compare(reference, got, sample.labels)
    result["provider"] = CPU
    result["sample"] = sample.source
    result["synthetic"] = sample.synthetic
    result["rows"] = sample.rows
    return result
