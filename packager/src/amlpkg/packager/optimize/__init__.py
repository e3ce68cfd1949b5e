"""``amlpkg optimize``: measured, accuracy-checked variants of a model version.

Variants (offline graph optimization, int8 dynamic/static quantization, fp16)
are made per target, measured on this machine, checked against the original on
a validation sample and registered as children of the model version. The build
step asks :func:`best_variant` which file to ship and :func:`variant_file` for it.
ONNX Runtime and the converters are imported only when a variant is made.
"""

from __future__ import annotations

from amlpkg.packager.optimize.judge import Limits
from amlpkg.packager.optimize.options import OptimizeOptions
from amlpkg.packager.optimize.pipeline import optimize
from amlpkg.packager.optimize.recipe import PRECISIONS, TARGETS, VariantSpec, plan
from amlpkg.packager.optimize.report import OptimizeReport
from amlpkg.packager.optimize.store import (
    VARIANT_KIND,
    Variant,
    best_variant,
    get_variant,
    list_variants,
    serving_config,
    variant_file,
)

__all__ = [
    "PRECISIONS",
    "TARGETS",
    "VARIANT_KIND",
    "Limits",
    "OptimizeOptions",
    "OptimizeReport",
    "Variant",
    "VariantSpec",
    "best_variant",
    "get_variant",
    "list_variants",
    "optimize",
    "plan",
    "serving_config",
    "variant_file",
]
