"""Registration in one transaction, on both backends: the version, its tags, aliases and
lineage edge, and what the caller adds (the server's audit row) commit together or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.lineage_edges import edges_to
from amlpkg.store.workspace import Workspace
from amlpkg.trainer import registry
from amlpkg.trainer.registry import ModelVersion
from amlpkg.trainer.store import runs as store_runs
from tests.trainer.conftest import make_onnx


def test_tags_aliases_and_edge_come_with_the_version(ws: Workspace, tmp_path: Path) -> None:
    run = store_runs.create_run(ws, "exp")
    digest, size = ws.artifacts.put_file(make_onnx(tmp_path / "m.onnx"))
    store_runs.add_artifact(ws, run, "m.onnx", digest, size)
    seen: list[ModelVersion] = []
    made = registry.register(
        "net", f"runs:/{run[:6]}/m.onnx", tags={"b": 2, "a": "x"},
        aliases=["prod", "staging"], in_transaction=seen.append, workspace=ws,
    )  # fmt: skip
    assert seen == [made]
    # What register answers is what a later read finds.
    assert registry.get_model_version("net@prod", workspace=ws) == made
    assert (made.version, made.tags, made.aliases) == (1, {"a": "x", "b": "2"}, ["prod", "staging"])
    assert made.source == f"runs:/{run}/m.onnx" and (made.sha256, made.size) == (digest, size)
    assert [e.src_id for e in edges_to(ws, ("model_version", "net:1"))] == [run]
    with pytest.raises(NotFoundError, match="has no artifact 'other"):
        registry.register("net", f"runs:/{run}/other.onnx", workspace=ws)
    with pytest.raises(NotFoundError, match="no run"):
        registry.register("net", f"runs:/{'0' * 32}/m.onnx", workspace=ws)
    again = registry.register("net", f"runs:/{run}/m.onnx", aliases=["prod"], workspace=ws)
    assert again.version == 2
    assert registry.get_model_version("net@prod", workspace=ws).version == 2
    assert registry.get_model_version("net@staging", workspace=ws).version == 1


def test_a_failure_inside_leaves_no_row(ws: Workspace, tmp_path: Path) -> None:
    run = store_runs.create_run(ws, "exp")
    model = make_onnx(tmp_path / "m.onnx")

    def fail(_version: ModelVersion) -> None:
        raise RuntimeError("the audit row could not be written")

    with pytest.raises(RuntimeError):
        registry.register(
            "net", model, run=run, aliases=["prod"], in_transaction=fail, workspace=ws
        )
    with pytest.raises(NotFoundError):
        registry.list_versions("net", workspace=ws)
    assert edges_to(ws, ("model_version", "net:1")) == []
    assert ws.conn.execute("SELECT COUNT(*) FROM aliases").scalar() == 0
    with pytest.raises(InvalidArgumentError, match="invalid alias"):
        registry.register("net", model, aliases=["1bad"], workspace=ws)
    assert registry.register("net", model, workspace=ws).version == 1  # the number was not used
