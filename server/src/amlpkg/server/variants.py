"""Variants a client made and measured on its own machine, checked before the store records them.

``amlpkg optimize --tracking-uri`` uploads each variant file first (sha256 checked,
bounded), then sends the rows; the rows are refused unless every field names what
the recipe can make, the id is the one the pipeline gives a variant of this
version, and the file is in the store with that size. The store's own
:func:`amlpkg.packager.optimize.store.insert_variants` then writes the rows and
their lineage edges in one transaction.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from amlpkg.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from amlpkg.packager.optimize.recipe import (
    FP16,
    GRAPH,
    INT8_DYNAMIC,
    INT8_STATIC,
    PRECISIONS,
    TARGETS,
)
from amlpkg.packager.optimize.store import Variant, get_variant
from amlpkg.store.workspace import Workspace

MAX_VARIANTS = 32
KINDS = (GRAPH, INT8_DYNAMIC, INT8_STATIC, FP16)
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Short = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class VariantIn(BaseModel):
    """One variant as ``amlpkg optimize`` made and measured it."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=400)]
    parent: Annotated[str, StringConstraints(min_length=3, max_length=300)]
    kind: Short
    target: Short
    precision: Short
    sha256: Sha256
    size: int = Field(ge=1, le=2**40)
    providers: Annotated[list[dict[str, Any]], Field(max_length=8)]
    recipe: dict[str, Any]
    measurements: dict[str, Any]
    accuracy: dict[str, Any]
    accepted: bool
    reason: Annotated[str, StringConstraints(max_length=4000)]
    chosen: bool = False


class VariantsIn(BaseModel):
    """The variants of one ``optimize`` call, recorded together."""

    variants: Annotated[list[VariantIn], Field(max_length=MAX_VARIANTS)]


def checked(ws: Workspace, parent: str, body: VariantsIn, now: float) -> list[Variant]:
    """The rows to record, or the first reason to refuse them (nothing is written here)."""
    chosen: set[str] = set()
    seen: set[str] = set()
    made: list[Variant] = []
    for item in body.variants:
        where = f"variant {item.id[:120]!r}"
        if item.parent != parent:
            raise InvalidArgumentError(f"{where} names parent {item.parent!r}, not {parent}")
        if item.kind not in KINDS or item.target not in TARGETS or item.precision not in PRECISIONS:
            raise InvalidArgumentError(
                f"{where}: unknown kind, target or precision",
                hint=f"kinds {', '.join(KINDS)}; targets {', '.join(TARGETS)};"
                f" precisions {', '.join(PRECISIONS)}",
            )
        pattern = (
            rf"{re.escape(f'{parent}/{item.target}/{item.kind}-{item.precision}/')}[0-9a-f]{{8}}"
        )
        if not re.fullmatch(pattern, item.id) or item.id in seen:
            raise InvalidArgumentError(
                f"{where} is not a new variant id of {parent}",
                hint="ids are NAME:VERSION/TARGET/KIND-PRECISION/8 hex digits, once each",
            )
        seen.add(item.id)
        if item.chosen and (not item.accepted or item.target in chosen):
            raise InvalidArgumentError(f"{where}: only one accepted variant per target is chosen")
        if item.chosen:
            chosen.add(item.target)
        if not ws.artifacts.exists(item.sha256):
            raise InvalidArgumentError(
                f"{where}: its file {item.sha256[:12]}... is not on the server",
                hint="upload it first (PUT .../variant-files?sha256=...)",
            )
        if ws.artifacts.verified_path(item.sha256).stat().st_size != item.size:
            raise InvalidArgumentError(f"{where}: its size is not its file's")
        if _recorded(ws, item.id):
            raise AlreadyExistsError(f"{where} is recorded already")
        made.append(Variant(**item.model_dump(), created=now))
    return made


def _recorded(ws: Workspace, variant_id: str) -> bool:
    try:
        get_variant(ws, variant_id)
    except NotFoundError:
        return False
    return True
