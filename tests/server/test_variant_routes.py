"""The routes `amlpkg optimize` and `amlpkg build` use against a server: a version's file down,
variant files, variant rows and package rows up, on both stores (the embedded SQLite folder and
PostgreSQL from ``.ci/services.sh``). Bad input is a 4xx saying what to fix; nothing is recorded
unless every row is right."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Api, onnx_bytes, sha256
from tests.server.test_runs_search import app

__all__ = ["app"]  # the server over each store

V = "/api/v1/models/net/versions/1"


@pytest.fixture
def api_with_version(api: dict[str, Api]) -> dict[str, Api]:
    model = onnx_bytes()
    made = api["contributor"].post(
        "/api/v1/models/net/versions/upload", params={"sha256": sha256(model)}, content=model
    )
    assert made.status_code == 201, made.text
    return api


def _row(file_sha: str, size: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": "net:1/cpu/graph-fp32/0123abcd", "parent": "net:1", "kind": "graph",
        "target": "cpu", "precision": "fp32", "sha256": file_sha, "size": size,
        "providers": [{"name": "cpu"}], "recipe": {"graph_level": "extended"},
        "measurements": {"speedup": 1.2}, "accuracy": {"max_abs_error": 0.0},
        "accepted": True, "reason": "ok", "chosen": True,
    }  # fmt: skip
    return {**row, **changes}


def test_the_file_comes_down_and_variants_go_up(api_with_version: dict[str, Api]) -> None:
    api = api_with_version
    model = onnx_bytes()
    down = api["reader"].get(f"{V}/file")
    assert down.status_code == 200 and down.content == model
    up = api["contributor"].put(
        f"{V}/variant-files", params={"sha256": sha256(model)}, content=model
    )
    assert up.status_code == 201, up.text
    assert up.json() == {"sha256": sha256(model), "size": len(model)}
    rows = {"variants": [_row(sha256(model), len(model))]}
    made = api["contributor"].post(f"{V}/variants", json=rows)
    assert made.status_code == 201, made.text
    assert made.json()[0]["chosen"] and made.json()[0]["parent"] == "net:1"
    lineage = api["reader"].get(f"{V}/lineage").json()
    assert [e["dst_id"] for e in lineage["downstream"]] == ["net:1/cpu/graph-fp32/0123abcd"]
    again = api["contributor"].post(f"{V}/variants", json=rows)
    assert again.status_code == 409 and again.json()["code"] == "already_exists"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"parent": "net:2"}, "names parent"),
        ({"id": "net:1/cpu/graph-fp32/../../x"}, "is not a new variant id"),
        ({"id": "net:1/cuda/graph-fp32/0123abcd"}, "is not a new variant id"),
        ({"kind": "magic"}, "unknown kind"),
        ({"sha256": "f" * 64}, "is not on the server"),
        ({"size": 1}, "its size is not its file's"),
        ({"accepted": False}, "only one accepted variant"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_recorded(
    api_with_version: dict[str, Api], changes: dict[str, Any], message: str
) -> None:
    api = api_with_version
    model = onnx_bytes()
    api["contributor"].put(f"{V}/variant-files", params={"sha256": sha256(model)}, content=model)
    good = _row(sha256(model), len(model), id="net:1/cpu/graph-fp32/00000000", chosen=False)
    rows = {"variants": [good, {**_row(sha256(model), len(model)), **changes}]}
    answer = api["contributor"].post(f"{V}/variants", json=rows)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    assert api["reader"].get(f"{V}/variants").json() == []


def test_uploads_are_checked(api_with_version: dict[str, Api]) -> None:
    api = api_with_version
    model = onnx_bytes()
    wrong = api["contributor"].put(f"{V}/variant-files", params={"sha256": "0" * 64}, content=model)
    assert wrong.status_code == 400 and "not the declared" in wrong.json()["error"]
    junk = b"not an onnx model"
    bad = api["contributor"].put(
        f"{V}/variant-files", params={"sha256": sha256(junk)}, content=junk
    )
    assert bad.status_code == 400, bad.text
    assert "variant.onnx" in bad.json()["error"] and "/" not in bad.json()["error"].split()[0]
    missing = api["contributor"].put(
        "/api/v1/models/net/versions/9/variant-files", params={"sha256": sha256(model)},
        content=model,
    )  # fmt: skip
    assert missing.status_code == 404
    assert api["reader"].get("/api/v1/models/net/versions/9/file").status_code == 404
    reader = api["reader"].put(
        f"{V}/variant-files", params={"sha256": sha256(model)}, content=model
    )
    assert reader.status_code == 403


def test_a_package_row_is_recorded_with_its_lineage(api_with_version: dict[str, Api]) -> None:
    api = api_with_version
    model = onnx_bytes()
    api["contributor"].put(f"{V}/variant-files", params={"sha256": sha256(model)}, content=model)
    variant = _row(sha256(model), len(model))
    api["contributor"].post(f"{V}/variants", json={"variants": [variant]}).raise_for_status()
    row = {"id": "pkg-20260101000000-abcdef", "model_name": "net", "model_version": 1,
           "variant_id": variant["id"], "flavor": "cpu", "platform": "linux/amd64",
           "format": "image", "image_ref": "registry/net:1", "labels": {"a": "b"},
           "made": {"kind": "image", "id": "registry/net@sha256:" + "1" * 64,
                    "relation": "pushed_as"}}  # fmt: skip
    made = api["contributor"].post("/api/v1/packages", json=row)
    assert made.status_code == 201, made.text
    assert made.json()["variant_id"] == variant["id"] and made.json()["labels"] == {"a": "b"}
    lineage = api["reader"].get(f"/api/v1/lineage/package/{row['id']}").json()
    assert [(e["relation"], e["dst_id"]) for e in lineage["downstream"]] == [
        ("pushed_as", "registry/net@sha256:" + "1" * 64)
    ]
    assert api["contributor"].post("/api/v1/packages", json=row).status_code == 409
