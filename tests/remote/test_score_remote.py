"""`amlpkg score` against a real team server: the model comes from the server (sha256
checked), the scoring runs here (local engine, or Spark in local mode), and which version
scored which dataset into which output is recorded in the server's lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import spark_available
from tests.remote.conftest import TeamServer, amlpkg
from tests.remote.test_deploy_remote import MODEL, _upload_versions
from tests.services import require

pytestmark = pytest.mark.slow
COLUMNS = ["f0", "f1", "f2", "f3"]


def _dataset(path: Path, rows: int = 500) -> np.ndarray:
    x = np.random.default_rng(3).normal(size=(rows, 4)).astype(np.float32)
    pq.write_table(pa.table({"id": np.arange(rows), **{c: x[:, i] for i, c in
                                                        enumerate(COLUMNS)}}), path)  # fmt: skip
    return x


def _expected(team: TeamServer, x: np.ndarray, version: int) -> np.ndarray:
    with team.api() as api:
        model = api.get(f"/models/{MODEL}/versions/{version}/file").content
    return np.asarray(ort.InferenceSession(model).run(None, {"x": x})[0])


def _scored_edges(team: TeamServer, version: int) -> list[tuple[str, str, str]]:
    with team.api() as api:
        chain = api.get(f"/lineage/model_version/{MODEL}:{version}").json()
    return [(e["src_id"], e["relation"], e["dst_id"]) for e in chain["downstream"]
            if e["dst_kind"] == "dataset"]  # fmt: skip


def _score(team: TeamServer, tmp_path: Path, *args: str, role: str = "contributor",
           check: bool = True) -> object:  # fmt: skip
    done = amlpkg("score", *args, "-i", str(tmp_path / "in.parquet"), "--input-columns",
                  ",".join(COLUMNS), "--json", env=team.env(role), check=check)  # fmt: skip
    return json.loads(done.stdout) if check else done


def test_score_uses_the_servers_version_and_records_the_lineage_there(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_versions(team, tmp_path)
    x = _dataset(tmp_path / "in.parquet")
    result = _score(team, tmp_path, f"{MODEL}:2", "-o", str(tmp_path / "out.parquet"))
    assert isinstance(result, dict) and result["model"] == f"{MODEL}:2" and result["rows"] == 500
    got = np.stack(pq.read_table(tmp_path / "out.parquet").column("y").to_numpy(
        zero_copy_only=False))  # fmt: skip
    np.testing.assert_allclose(got, _expected(team, x, 2), rtol=1e-5)
    assert not np.allclose(got, _expected(team, x, 1))  # version 2's weights, not 1's
    edges = _scored_edges(team, 2)
    assert (f"{MODEL}:2", "scored", result["input_id"]) in edges
    with team.api() as api:
        into = api.get(f"/lineage/dataset/{result['input_id']}").json()["downstream"]
    assert [(e["relation"], e["dst_id"]) for e in into] == [("scored_into", result["output_id"])]
    assert _scored_edges(team, 1) == []


def test_a_reader_cannot_score_against_the_server(team: TeamServer, tmp_path: Path) -> None:
    _upload_versions(team, tmp_path)
    _dataset(tmp_path / "in.parquet")
    done = _score(team, tmp_path, f"{MODEL}:1", "-o", str(tmp_path / "out.parquet"),
                  role="reader", check=False)  # fmt: skip
    assert getattr(done, "returncode", None) == 2
    assert "a reader token may not record what `amlpkg score` makes" in getattr(done, "stderr", "")
    assert not (tmp_path / "out.parquet").exists()
    with team.api("reader") as api:
        url = f"/models/{MODEL}/versions/1/scorings"
        assert api.post(url, json={"input": "in"}).status_code == 403
    with team.api("contributor") as api:
        assert api.post(url, json={"input": "a\nb"}).status_code == 400
        assert api.post(url, json={"input": "x" * 3000}).status_code == 400
        assert api.post(f"/models/{MODEL}/versions/9/scorings", json={"input": "in"}).status_code \
            == 404  # fmt: skip
    assert _scored_edges(team, 1) == []


def test_score_on_spark_against_the_server(team: TeamServer, tmp_path: Path) -> None:
    require(spark_available(), "pyspark and Java 17 are needed")
    _upload_versions(team, tmp_path)
    x = _dataset(tmp_path / "in.parquet", rows=200)
    result = _score(team, tmp_path, f"{MODEL}:1", "-o", str(tmp_path / "out"), "--engine",
                    "spark", "--spark-master", "local[1]")  # fmt: skip
    assert isinstance(result, dict) and result["rows"] == 200
    table = pq.read_table(tmp_path / "out").sort_by("id")
    got = np.stack(table.column("y").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(got, _expected(team, x, 1), rtol=1e-5)
    assert (f"{MODEL}:1", "scored", result["input_id"]) in _scored_edges(team, 1)
