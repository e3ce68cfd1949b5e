"""The model registry: versions, signature, aliases, refusals, lineage."""

from __future__ import annotations

from pathlib import Path

import pytest

import amlpkg
from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.artifacts import sha256_file
from amlpkg.store.lineage_edges import add_edge
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.integrity import check_integrity
from amlpkg.trainer.lineage_view import lineage
from amlpkg.trainer.refs import ModelRef, parse_model_ref
from amlpkg.trainer.registry import (
    get_model_version,
    list_models,
    list_versions,
    register,
    resolve_model_file,
    set_alias,
)
from tests.trainer.conftest import make_onnx


def _counts(ws: Workspace) -> tuple[int, int, int]:
    versions = ws.conn.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
    models = ws.conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    return versions, models, len(list(ws.artifacts.iter_digests()))


def test_register_reads_signature_and_auto_increments(ws: Workspace, onnx_file: Path) -> None:
    first = register("adder", onnx_file, tags={"team": "a"}, description="d", workspace=ws)
    second = register("adder", onnx_file, workspace=ws)
    assert (first.version, second.version) == (1, 2)
    assert first.sha256 == sha256_file(onnx_file)[0] == second.sha256
    assert first.size == onnx_file.stat().st_size
    assert first.opset == 17
    assert first.tags == {"team": "a"} and first.description == "d"
    assert first.signature == {
        "inputs": [{"name": "X", "elem_type": "float", "datatype": "FP32", "shape": ["batch", 4]}],
        "outputs": [{"name": "Y", "elem_type": "float", "datatype": "FP32", "shape": ["batch", 4]}],
    }
    assert get_model_version("adder", workspace=ws).version == 2
    assert [v.version for v in list_versions("adder", workspace=ws)] == [2, 1]
    assert list_models(workspace=ws)[0]["latest_version"] == 2


def test_aliases_and_refs(ws: Workspace, onnx_file: Path) -> None:
    register("m", onnx_file, workspace=ws)
    register("m", onnx_file, workspace=ws)
    assert set_alias("m", 1, "production", workspace=ws).aliases == ["production"]
    assert get_model_version("m@production", workspace=ws).version == 1
    set_alias("m", 2, "production", workspace=ws)  # moves
    assert get_model_version("m@production", workspace=ws).version == 2
    version, path = resolve_model_file("m:1", workspace=ws)
    assert version.version == 1 and path.read_bytes() == onnx_file.read_bytes()
    with pytest.raises(NotFoundError):
        set_alias("m", 9, "staging", workspace=ws)
    with pytest.raises(NotFoundError):
        get_model_version("m@staging", workspace=ws)
    with pytest.raises(NotFoundError):
        get_model_version("nothing", workspace=ws)
    with pytest.raises(InvalidArgumentError):
        set_alias("m", 1, "1bad", workspace=ws)


def test_parse_model_ref() -> None:
    assert parse_model_ref("a.b-c_1") == ModelRef("a.b-c_1")
    assert parse_model_ref("m:12") == ModelRef("m", version=12)
    assert parse_model_ref("m@prod") == ModelRef("m", alias="prod")
    for bad in ("m:0", "m:x", "m@", "", "a/b:1"):
        with pytest.raises(InvalidArgumentError):
            parse_model_ref(bad)


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "", "a b", "-lead", "a..b", "x" * 129])
def test_unsafe_names_refused_and_nothing_stored(ws: Workspace, onnx_file: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid model name"):
        register(name, onnx_file, workspace=ws)
    assert _counts(ws) == (0, 0, 0)


def test_bad_onnx_refused_and_nothing_stored(ws: Workspace, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf at all" * 100)
    with pytest.raises(InvalidArgumentError, match="not a valid ONNX model"):
        register("m", garbage, workspace=ws)
    with pytest.raises(NotFoundError, match="does not exist"):
        register("m", tmp_path / "missing.onnx", workspace=ws)
    with pytest.raises(InvalidArgumentError, match="not a file"):
        register("m", tmp_path, workspace=ws)
    assert _counts(ws) == (0, 0, 0)


def test_run_artifact_uri_links_lineage(home: Path, tmp_path: Path) -> None:
    run = amlpkg.start_run("lineage", home=home)
    amlpkg.log_param("lr", 0.1)
    amlpkg.log_metric("acc", 0.5, step=0)
    amlpkg.log_metric("acc", 0.9, step=1)
    amlpkg.log_artifact(make_onnx(tmp_path / "model.onnx"), "model")
    ws = run.workspace
    version = register("clf", f"runs:/{run.id[:8]}/model/model.onnx", workspace=ws)
    assert version.run_id == run.id
    assert version.source == f"runs:/{run.id}/model/model.onnx"
    with pytest.raises(NotFoundError):
        register("clf", f"runs:/{run.id}/model/other.onnx", workspace=ws)
    with pytest.raises(InvalidArgumentError):
        register("clf", "runs:/", workspace=ws)
    # Later stages add edges; lineage follows them.
    add_edge(ws, ("model_version", "clf:1"), ("variant", "clf:1/cpu-fp32"), "optimized")
    add_edge(ws, ("variant", "clf:1/cpu-fp32"), ("package", "img@sha256:ab"), "packaged")
    amlpkg.end_run()
    chain = lineage("clf:1", home=home)
    assert chain["run"]["id"] == run.id and chain["run"]["status"] == "completed"
    assert chain["run"]["params"] == {"lr": "0.1"}
    assert chain["run"]["metrics"] == {"acc": 0.9}
    assert [e["relation"] for e in chain["upstream"]] == ["produced"]
    assert [e["dst_kind"] for e in chain["downstream"]] == ["variant", "package"]


def test_register_with_explicit_run_and_integrity(ws: Workspace, onnx_file: Path) -> None:
    from amlpkg.trainer.store.runs import create_run

    run_id = create_run(ws, "e")
    version = register("m", onnx_file, run=run_id, workspace=ws)
    assert version.run_id == run_id
    with pytest.raises(NotFoundError):
        register("m", onnx_file, run="abcdef12", workspace=ws)
    assert check_integrity(ws) == []
    path = ws.artifacts.path_for(version.sha256)
    path.chmod(0o644)
    path.write_bytes(b"corrupt")
    assert len(check_integrity(ws)) == 1


def test_external_data_model_refused(ws: Workspace, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(make_onnx(tmp_path / "m.onnx", weight_bytes=4096)))
    onnx.save(
        model,
        str(tmp_path / "ext.onnx"),
        save_as_external_data=True,
        location="ext.data",
        size_threshold=0,
    )
    with pytest.raises(InvalidArgumentError, match="external data"):
        register("ext", tmp_path / "ext.onnx", workspace=ws)
    assert _counts(ws) == (0, 0, 0)
    assert not list((ws.home / "artifacts").rglob(".tmp-*"))
