"""Tracked runs, ONNX export with parity checks, and the workspace store.

Imports nothing else of amlpkg but :mod:`amlpkg.errors`. The names below load
on first use, so ``import amlpkg.trainer`` imports no ML framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "export_onnx": "amlpkg.trainer.export",
    "verify_onnx_parity": "amlpkg.trainer.export",
    "ExportResult": "amlpkg.trainer.export",
    "ExportParityError": "amlpkg.trainer.parity",
    "ParityReport": "amlpkg.trainer.parity",
    "register": "amlpkg.trainer.registry",
    "get_model_version": "amlpkg.trainer.registry",
    "resolve_model_file": "amlpkg.trainer.registry",
    "set_alias": "amlpkg.trainer.registry",
    "list_models": "amlpkg.trainer.registry",
    "list_versions": "amlpkg.trainer.registry",
    "ModelVersion": "amlpkg.trainer.registry",
    "parse_model_ref": "amlpkg.trainer.refs",
    "lineage": "amlpkg.trainer.lineage_view",
    "run_tracked": "amlpkg.trainer.runner",
    "open_workspace": "amlpkg.store.workspace",
    "Workspace": "amlpkg.store.workspace",
    "add_edge": "amlpkg.store.lineage_edges",
    "WorkspaceSettings": "amlpkg.settings",
}

__all__ = [
    "ExportParityError",
    "ExportResult",
    "ModelVersion",
    "ParityReport",
    "Workspace",
    "WorkspaceSettings",
    "add_edge",
    "export_onnx",
    "get_model_version",
    "lineage",
    "list_models",
    "list_versions",
    "open_workspace",
    "parse_model_ref",
    "register",
    "resolve_model_file",
    "run_tracked",
    "set_alias",
    "verify_onnx_parity",
]

if TYPE_CHECKING:
    from amlpkg.settings import WorkspaceSettings
    from amlpkg.store.lineage_edges import add_edge
    from amlpkg.store.workspace import Workspace, open_workspace
    from amlpkg.trainer.export import ExportResult, export_onnx, verify_onnx_parity
    from amlpkg.trainer.lineage_view import lineage
    from amlpkg.trainer.parity import ExportParityError, ParityReport
    from amlpkg.trainer.refs import parse_model_ref
    from amlpkg.trainer.registry import (
        ModelVersion,
        get_model_version,
        list_models,
        list_versions,
        register,
        resolve_model_file,
        set_alias,
    )
    from amlpkg.trainer.runner import run_tracked


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amlpkg.trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
