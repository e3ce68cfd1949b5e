"""Sign optimized variants like registered versions (``optimize --sign-key``).

Each accepted variant gets an OpenSSF Model Signing bundle over its own file and a
release file naming its model version, and an in-toto SLSA provenance statement
naming how it was made: the quantization recipe, the providers, its accuracy
against the source version and that version's digest. The signature is linked from
the variant in the lineage (``variant --signed--> signature``), so builds place it
beside the variant's file and ``amlpkg models verify VARIANT_ID`` checks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlpkg.errors import NotFoundError
from amlpkg.packager.optimize.report import OptimizeReport
from amlpkg.packager.optimize.store import VARIANT_KIND, Variant, get_variant, variant_file
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import get_model_version
from amlpkg.trainer.signing import (
    SignatureRecord,
    SignedFile,
    Signer,
    sign_derived_file,
    signature_of,
    write_signed_folder,
)


def optimize_settings(
    variant: Variant, report: OptimizeReport, source_sha256: str
) -> dict[str, Any]:
    """What the provenance says about how ``variant`` was made and judged."""
    return {
        "variant": variant.id,
        "target": variant.target,
        "kind": variant.kind,
        "precision": variant.precision,
        "quantization": variant.recipe,
        "providers": variant.providers,
        "accuracy_vs_fp32": variant.accuracy,
        "measured_on": report.provider if report.measured else None,
        "speedup": variant.measurements.get("speedup"),
        "validation": report.validation,
        "synthetic_validation": report.synthetic_validation,
        "chosen": variant.chosen,
        "source": {"model": variant.parent, "sha256": source_sha256},
    }


def sign_variants(ws: Workspace, report: OptimizeReport, signer: Signer) -> list[SignatureRecord]:
    """Sign every accepted variant of ``report`` (already recorded in ``ws``)."""
    records = []
    for variant in report.variants:
        if not variant.accepted:
            continue
        version = get_model_version(variant.parent, workspace=ws)
        settings = optimize_settings(variant, report, version.sha256)
        made = SignedFile(
            version, (VARIANT_KIND, variant.id), variant_file(ws, variant), variant.sha256
        )
        records.append(sign_derived_file(ws, signer, made, settings))
    return records


def variant_signature(ws: Workspace, variant_id: str) -> SignatureRecord:
    """The newest signature of the variant; NotFoundError when it was never signed."""
    variant = get_variant(ws, variant_id)
    record = signature_of(ws, (VARIANT_KIND, variant.id))
    if record is None:
        raise NotFoundError(
            f"variant {variant.id} is not signed",
            hint="optimize with --sign-key KEY (or $AMLPKG_SIGNING_KEY) to sign its variants",
        )
    return record


def export_signed_variant(
    ws: Workspace, variant_id: str, folder: Path, *, with_provenance: Path | None = None
) -> SignatureRecord:
    """Write the variant's signed folder (its file, release, bundle) into ``folder``."""
    record = variant_signature(ws, variant_id)
    write_signed_folder(
        ws, record, variant_file(ws, get_variant(ws, variant_id)), folder, with_provenance
    )
    return record
