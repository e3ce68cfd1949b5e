"""The store contract: every stage's rows and the artifacts round-trip on both backends.

The same tests run on the embedded workspace and on PostgreSQL + S3 (``ws`` is
parametrized in conftest.py); no mocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.errors import IntegrityError, InvalidArgumentError, NotFoundError
from amlpkg.store.lineage_edges import add_edge, downstream, edges_from, edges_to
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs
from tests.trainer.conftest import make_onnx


def test_runs_params_metrics_tags_and_artifacts_round_trip(ws: Workspace, tmp_path: Path) -> None:
    info = store_runs.RunInfo(command="train.py", git_dirty=True, user="ada", host="box")
    run = store_runs.create_run(ws, "exp", "first", info)
    store_runs.log_params(ws, run, {"lr": 0.1, "layers": 3})
    for step, value in enumerate([0.5, 0.7, 0.9]):
        store_runs.log_metrics(ws, run, {"acc": value, "loss": 1 - value}, step)
    store_runs.set_tags(ws, run, {"team": "vision"})
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"w" * 10_000)
    digest, size = ws.artifacts.put_file(blob)
    store_runs.add_artifact(ws, run, "model/weights.bin", digest, size)
    store_runs.finish_run(ws, run, "completed", 0)

    record = queries.get_run(ws, run[:8])
    assert (record.experiment, record.name, record.status, record.exit_code) == (
        "exp", "first", "completed", 0
    )  # fmt: skip
    assert (record.info.user, record.info.git_dirty, record.info.command) == (
        "ada", True, "train.py"
    )  # fmt: skip
    assert record.params == {"lr": "0.1", "layers": "3"}
    assert record.metrics == {"acc": 0.9, "loss": pytest.approx(0.1)}
    assert record.tags == {"team": "vision"}
    assert record.start_time <= (record.end_time or 0)
    assert [v for _, v, _ in store_runs.metric_history(ws, run, "acc")] == [0.5, 0.7, 0.9]
    assert store_runs.get_artifact(ws, run, "model/weights.bin") == (digest, 10_000)
    assert ws.artifacts.read_bytes(digest) == b"w" * 10_000
    assert digest in set(ws.artifacts.iter_digests())

    other = store_runs.create_run(ws, "exp", "second")
    assert [r.id for r in queries.list_runs(ws, experiment="exp")] == [other, run]
    assert [r.id for r in queries.list_runs(ws, status="completed")] == [run]
    assert queries.best_run(ws, "acc").id == run


def test_a_batch_of_points_keeps_its_order_and_continues_each_keys_steps(ws: Workspace) -> None:
    run = store_runs.create_run(ws, "exp", "batch")
    store_runs.log_metrics(ws, run, {"loss": 1.0}, 10)
    store_runs.log_metric_points(
        ws,
        run,
        [("loss", 0.9, 3), ("loss", 0.8, None), ("acc", 0.1, None), ("acc", 0.2, None),
         ("loss", 0.7, 12), ("loss", 0.6, None)],
    )  # fmt: skip
    # An implicit step continues from the highest step stored or earlier in the batch.
    steps = [(s, v) for s, v, _ in store_runs.metric_history(ws, run, "loss")]
    assert sorted(steps) == [(3, 0.9), (10, 1.0), (11, 0.8), (12, 0.7), (13, 0.6)]
    assert [(s, v) for s, v, _ in store_runs.metric_history(ws, run, "acc")] == [
        (0, 0.1), (1, 0.2)
    ]  # fmt: skip
    with pytest.raises(InvalidArgumentError):
        store_runs.log_metric_points(ws, run, [("ok", 1.0, None), ("bad", float("nan"), None)])
    assert store_runs.metric_history(ws, run, "ok") == []  # nothing of a refused batch


def test_artifacts_are_deduplicated_and_verified(ws: Workspace, tmp_path: Path) -> None:
    first = ws.artifacts.put_bytes(b"same bytes")
    assert ws.artifacts.put_bytes(b"same bytes") == first
    assert ws.artifacts.exists(first[0])
    assert not ws.artifacts.exists("0" * 64)
    with pytest.raises(NotFoundError):
        ws.artifacts.verified_path("1" * 64)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB: a multipart upload on S3
    digest, size = ws.artifacts.put_file(big)
    assert size == big.stat().st_size
    assert ws.artifacts.verified_path(digest).read_bytes() == big.read_bytes()
    # A local copy changed behind the store's back is caught on read.
    path = ws.artifacts.verified_path(first[0])
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    try:
        assert ws.artifacts.read_bytes(first[0]) == b"same bytes"  # S3: fetched again
    except IntegrityError:
        assert ws.embedded  # the folder store has no other copy to fall back on


def test_registry_versions_and_aliases(ws: Workspace, tmp_path: Path) -> None:
    from amlpkg.trainer import registry

    run = store_runs.create_run(ws, "exp", "trainer")
    model = make_onnx(tmp_path / "add.onnx")
    first = registry.register("net", model, run=run, tags={"stage": "a"}, workspace=ws)
    second = registry.register("net", make_onnx(tmp_path / "b.onnx", n_features=3), workspace=ws)
    assert (first.version, second.version) == (1, 2)
    assert first.run_id == run and first.tags == {"stage": "a"}
    registry.set_alias("net", 1, "prod", workspace=ws)
    assert registry.get_model_version("net@prod", workspace=ws).version == 1
    registry.set_alias("net", 2, "prod", workspace=ws)  # moving an alias
    assert registry.get_model_version("net@prod", workspace=ws).aliases == ["prod"]
    assert registry.get_model_version("net", workspace=ws).version == 2
    assert [v.version for v in registry.list_versions("net", workspace=ws)] == [2, 1]
    [summary] = registry.list_models(workspace=ws)
    assert (summary["name"], summary["latest_version"], summary["versions"]) == ("net", 2, 2)
    assert summary["aliases"] == {"prod": 2}
    version, path = registry.resolve_model_file("net:1", workspace=ws)
    assert path.read_bytes() == model.read_bytes() and version.sha256 == first.sha256
    # runs:/ sources read the run's stored artifact.
    digest, size = ws.artifacts.put_file(model)
    store_runs.add_artifact(ws, run, "model/add.onnx", digest, size)
    third = registry.register("net", f"runs:/{run}/model/add.onnx", workspace=ws)
    assert (third.version, third.run_id, third.sha256) == (3, run, digest)


def test_lineage_edges(ws: Workspace) -> None:
    add_edge(ws, ("run", "r1"), ("model_version", "m:1"), "produced")
    add_edge(ws, ("run", "r1"), ("model_version", "m:1"), "produced")  # a no-op
    add_edge(ws, ("model_version", "m:1"), ("variant", "v1"), "optimized")
    add_edge(ws, ("variant", "v1"), ("package", "p1"), "packaged_as")
    assert [e.dst_id for e in edges_from(ws, ("run", "r1"))] == ["m:1"]
    assert [e.src_id for e in edges_to(ws, ("package", "p1"))] == ["v1"]
    assert [e.dst_id for e in downstream(ws, ("run", "r1"))] == ["m:1", "v1", "p1"]


def test_variants_packages_and_deployments_round_trip(ws: Workspace, tmp_path: Path) -> None:
    from amlpkg.packager.build.records import Package, get_package, list_packages, record_package
    from amlpkg.packager.deploy import records as deployments
    from amlpkg.packager.optimize.store import (
        Variant,
        best_variant,
        get_variant,
        insert_variants,
        list_variants,
    )
    from amlpkg.trainer import registry

    registry.register("net", make_onnx(tmp_path / "add.onnx"), workspace=ws)
    digest, size = ws.artifacts.put_bytes(b"variant bytes")
    variant = Variant(
        id="net-1-cpu-int8", parent="net:1", kind="quantized", target="cpu", precision="int8",
        sha256=digest, size=size, providers=[{"name": "CPUExecutionProvider"}],
        measurements={"p50_ms": 1.5}, accuracy={"max_abs": 0.01}, accepted=True, reason="ok",
        chosen=True, created=10.0, recipe={"level": "all"},
    )  # fmt: skip
    insert_variants(ws, [variant])
    assert get_variant(ws, variant.id).measurements == {"p50_ms": 1.5}
    assert [v.id for v in list_variants(ws, "net:1")] == [variant.id]
    best = best_variant(ws, "net:1", "cpu")
    assert best is not None and best.chosen and best.accepted

    package = record_package(
        ws,
        Package(id="pkg-1", model_name="net", model_version=1, flavor="cpu", platform="linux/amd64",
                format="dir", variant_id=variant.id, path="/x", size_bytes=2**40,
                labels={"a": "b"}, build_seconds=1.25),
    )  # fmt: skip
    assert get_package(ws, package.id).size_bytes == 2**40
    assert [p.id for p in list_packages(ws, "net")] == ["pkg-1"]

    first = deployments.create(ws, name="web", target="local", config={"port": 1}, model="net:1")
    second = deployments.create(ws, name="web", target="local", config={"port": 2}, model="net:1")
    assert (first.revision, second.revision) == (1, 2)
    deployments.update(ws, second.id, status="ready", endpoint_http="http://127.0.0.1:1")
    assert deployments.get(ws, "web").status == "ready"
    assert [d.revision for d in deployments.history(ws, "web")] == [2, 1]
    assert [d.id for d in deployments.latest_per_name(ws)] == [second.id]


def test_devices_and_telemetry_round_trip(ws: Workspace) -> None:
    from amlpkg.collector import devices
    from amlpkg.collector.store import TelemetryRow, TelemetryStore
    from amlpkg.collector.summary import summarize

    devices.set_desired(ws, "cam-1", "net:1", "a" * 64, deployment_id="edge:1")
    store = TelemetryStore(ws)
    rows = [
        TelemetryRow(message_id=f"m{i}", source="device", device_id="cam-1",
                     deployment_id="edge:1", model_name="net", model_version="1", seq=i,
                     produced=100.0 + i, window_s=10.0, requests=10, errors=i,
                     latency_avg_ms=2.0, latency_p95_ms=5.0, body="{}")
        for i in range(3)
    ]  # fmt: skip
    assert store.add(rows) == 3
    assert store.add(rows[:1]) == 0  # a message seen before is not stored twice
    device = devices.get(ws, "cam-1")
    assert (device.desired_model, device.desired_deployment_id) == ("net:1", "edge:1")
    assert device.last_telemetry is not None
    assert [d.id for d in devices.list_devices(ws)] == ["cam-1"]
    [summary] = summarize(ws, by="deployment")
    assert (summary.messages, summary.requests, summary.errors) == (3, 30, 3)
