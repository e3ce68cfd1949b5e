"""What a build ships: the model version, or the variant ``amlpkg optimize --auto`` chose."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.packager.build.recipe import ModelFacts
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion, get_model_version
from amlpkg.trainer.store import queries


@dataclass(frozen=True)
class ModelSource:
    """The file to ship and the lineage facts that go with it."""

    version: ModelVersion
    model_file: Path
    facts: ModelFacts
    variant_id: str | None = None
    providers: tuple[dict[str, Any], ...] | None = None
    """Providers the chosen variant was measured with (config.yaml form), if any."""


def _run_commit(ws: Workspace, run_id: str | None) -> str | None:
    if run_id is None:
        return None
    return queries.get_run(ws, run_id).info.git_commit


def resolve(ws: Workspace, ref: str, target: str, *, use_variant: bool = True) -> ModelSource:
    """The version ``ref`` names and its best variant for ``target`` (when one was chosen)."""
    version = get_model_version(ref, workspace=ws)
    variant: Any = None
    if use_variant:
        from amlpkg.packager.optimize import best_variant

        variant = best_variant(ws, version.ref, target)
    if variant is None:
        model_file = ws.artifacts.verified_path(version.sha256)
        sha256, variant_id, providers = version.sha256, None, None
    else:
        from amlpkg.packager.optimize import variant_file

        model_file = variant_file(ws, variant)
        sha256, variant_id = variant.sha256, str(variant.id)
        providers = tuple(variant.providers) or None
    facts = ModelFacts(
        name=version.name,
        version=version.version,
        sha256=sha256,
        run_id=version.run_id,
        variant=variant_id,
        git_commit=_run_commit(ws, version.run_id),
        description=version.description,
    )
    return ModelSource(version, model_file, facts, variant_id, providers)
