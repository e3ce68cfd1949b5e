"""The model repository: layout, config, version policy, load/unload/reload, broken models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import (
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from amlpkg.runtime.model_config import ModelConfig, VersionPolicy, load_model_config
from amlpkg.runtime.types import RepositoryModel
from tests.runtime.test_core_dataplane import with_dataplane
from tests.runtime.toy_models import identity_model, infer_request, mlp_model, save, write_config


def mlp_versions(repo: Path, versions: list[int], name: str = "mlp") -> None:
    for v in versions:
        save(mlp_model(seed=v), repo, name, v)


def x() -> np.ndarray:
    return np.ones((1, 64), np.float32)


def test_unknown_config_key_names_the_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "m", "max_batch_size: 4\nmax_batch_sise: 8\n")
    with pytest.raises(ModelLoadError) as caught:
        load_model_config(tmp_path / "m")
    assert str(path) in caught.value.message
    assert "max_batch_sise: unknown key" in caught.value.message


def test_config_defaults_and_rules(tmp_path: Path) -> None:
    config = load_model_config(tmp_path)  # no config.yaml
    assert config.max_batch_size == 0 and config.dynamic_batching is None
    assert [p.name for p in config.execution_providers] == ["cpu"]
    assert config.version_policy.select([1, 2, 3]) == [3]
    with pytest.raises(ValueError, match="dynamic_batching needs max_batch_size"):
        ModelConfig.model_validate({"dynamic_batching": {}})
    with pytest.raises(ValueError, match="only one of"):
        VersionPolicy.model_validate({"latest": 2, "all": True})
    with pytest.raises(ValueError, match="preferred_batch_size 16 is outside"):
        ModelConfig.model_validate(
            {"max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [16]}}
        )
    assert VersionPolicy(latest=2).select([3, 1, 2]) == [2, 3]
    assert VersionPolicy(all=True).select([3, 1]) == [1, 3]
    assert VersionPolicy(specific=(1, 3)).select([1, 2, 3]) == [1, 3]
    assert VersionPolicy(specific=(1, 3)).to_triton() == {"specific": {"versions": [1, 3]}}


def test_version_policy_and_version_selection(tmp_path: Path) -> None:
    mlp_versions(tmp_path, [1, 2, 3])
    write_config(tmp_path, "mlp", "version_policy: {specific: [1, 3]}\n")
    mlp_versions(tmp_path, [1, 2], name="latest")

    async def body(dp: DataPlane) -> None:
        meta = await dp.model_metadata("mlp")
        assert meta.versions == ("1", "3")
        default = await dp.infer(infer_request("mlp", {"x": x()}))
        assert default.model_version == "3"  # the highest ready version
        one = await dp.infer(infer_request("mlp", {"x": x()}, version="1"))
        assert one.model_version == "1"
        assert not np.array_equal(one.outputs[0].data, default.outputs[0].data)
        with pytest.raises(
            ModelNotFoundError, match="Request for unknown model: 'mlp' version 2 is not found"
        ):
            await dp.infer(infer_request("mlp", {"x": x()}, version="2"))
        assert (await dp.model_metadata("latest")).versions == ("2",)

    with_dataplane(tmp_path, body)


def test_broken_model_is_reported_while_the_others_serve(tmp_path: Path) -> None:
    mlp_versions(tmp_path, [1])
    broken = tmp_path / "broken" / "1" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not an onnx model")
    write_config(tmp_path, "badconfig", "instance_count: 0\n")
    save(mlp_model(), tmp_path, "badconfig")

    async def body(dp: DataPlane) -> list[RepositoryModel]:
        # Strict readiness (the default): not ready while a model to serve failed.
        assert not await dp.ready()
        dp.strict_readiness = False
        assert await dp.ready()
        response = await dp.infer(infer_request("mlp", {"x": x()}))
        assert response.outputs[0].shape == (1, 10)
        with pytest.raises(ModelNotReadyError, match="ONNX Runtime cannot load"):
            await dp.infer(infer_request("broken", {"x": x()}))
        assert [m.name for m in await dp.repository_index(ready_only=True)] == ["mlp"]
        return await dp.repository_index()

    rows = {r.name: r for r in with_dataplane(tmp_path, body)}
    assert rows["mlp"].state == "READY" and rows["mlp"].version == "1"
    assert rows["broken"].state == "UNAVAILABLE"
    assert "ONNX Runtime cannot load" in rows["broken"].reason
    assert rows["badconfig"].state == "UNAVAILABLE"
    assert "instance_count" in rows["badconfig"].reason


def test_load_unload_and_load_again(tmp_path: Path) -> None:
    mlp_versions(tmp_path, [1])

    async def main() -> None:
        dp = DataPlane.from_repository(tmp_path, models=[], environ={})
        await dp.start()
        try:
            index = await dp.repository_index()
            assert index == [RepositoryModel("mlp", "", "UNAVAILABLE", "not loaded")]
            with pytest.raises(ModelNotReadyError, match="has no available versions"):
                await dp.infer(infer_request("mlp", {"x": x()}))
            await dp.load_model("mlp")
            assert await dp.model_ready("mlp")
            await dp.unload_model("mlp")
            assert (await dp.repository_index())[0].reason == "unloaded"
            assert not await dp.model_ready("mlp")
            await dp.load_model("mlp")
            assert (await dp.infer(infer_request("mlp", {"x": x()}))).model_version == "1"
            with pytest.raises(ModelNotFoundError, match="failed to poll from model repository"):
                await dp.load_model("ghost")
            with pytest.raises(ModelNotFoundError):
                await dp.load_model("../etc")
        finally:
            await dp.stop()

    asyncio.run(main())


def test_reload_swaps_to_new_versions_and_in_flight_requests_finish(tmp_path: Path) -> None:
    mlp_versions(tmp_path, [1])
    # The requests sit in the batch queue (200 ms delay) while the reload happens.
    write_config(
        tmp_path,
        "mlp",
        "max_batch_size: 8\ndynamic_batching: {max_queue_delay_microseconds: 200000}\n",
    )

    async def main() -> None:
        dp = DataPlane.from_repository(tmp_path, environ={})
        await dp.start()
        try:
            old_model = await dp.model_metadata("mlp")
            assert old_model.versions == ("1",)
            running = [
                asyncio.ensure_future(dp.infer(infer_request("mlp", {"x": x()}))) for _ in range(4)
            ]
            await asyncio.sleep(0)
            mlp_versions(tmp_path, [2])
            await dp.load_model("mlp")  # reload: latest policy moves to version 2
            assert all(task.done() for task in running)  # the old version was drained first
            for response in await asyncio.gather(*running):
                assert response.model_version == "1"  # accepted before the switch
            assert (await dp.model_metadata("mlp")).versions == ("2",)
            after = await dp.infer(infer_request("mlp", {"x": x()}))
            assert after.model_version == "2"
        finally:
            await dp.stop()

    asyncio.run(main())


def test_failed_reload_keeps_the_working_version(tmp_path: Path) -> None:
    mlp_versions(tmp_path, [1])

    async def main() -> None:
        dp = DataPlane.from_repository(tmp_path, environ={})
        await dp.start()
        try:
            (tmp_path / "mlp" / "1" / "model.onnx").write_bytes(b"garbage")
            with pytest.raises(ModelLoadError, match="version 1"):
                await dp.load_model("mlp")
            response = await dp.infer(infer_request("mlp", {"x": x()}))
            assert response.outputs[0].shape == (1, 10)
            write_config(tmp_path, "mlp", "bogus: 1\n")
            with pytest.raises(ModelLoadError, match="bogus: unknown key"):
                await dp.load_model("mlp")
            assert await dp.model_ready("mlp")
        finally:
            await dp.stop()

    asyncio.run(main())


def test_load_with_a_config_parameter(tmp_path: Path) -> None:
    save(identity_model("FP32"), tmp_path, "ident")

    async def body(dp: DataPlane) -> None:
        assert (await dp.model_config("ident"))["max_batch_size"] == 0
        await dp.load_model("ident", {"config": '{"max_batch_size": 4}'})
        config = await dp.model_config("ident")
        assert config["max_batch_size"] == 4 and config["input"][0]["dims"] == [4]
        with pytest.raises(InvalidInputError, match="max_batch_siz: unknown key"):
            await dp.load_model("ident", {"config": {"max_batch_siz": 4}})

    with_dataplane(tmp_path, body)


def test_batching_needs_a_dynamic_batch_dim(tmp_path: Path) -> None:
    save(identity_model("FP32", (2, 4)), tmp_path, "fixed")
    write_config(tmp_path, "fixed", "max_batch_size: 4\n")

    rows = with_dataplane(tmp_path, lambda dp: dp.repository_index())
    assert rows[0].state == "UNAVAILABLE"
    assert "needs a dynamic first (batch) dim" in rows[0].reason


def test_dims_override_pins_and_checks(tmp_path: Path) -> None:
    save(identity_model("FP32", ("batch", "n")), tmp_path, "pinned")
    write_config(
        tmp_path,
        "pinned",
        "max_batch_size: 4\ninputs: {INPUT0: {dims: [3], datatype: FP32}}\n",
    )
    save(identity_model("FP32", ("batch", "n")), tmp_path, "wrongtype")
    write_config(tmp_path, "wrongtype", "inputs: {INPUT0: {datatype: INT8}}\n")

    async def body(dp: DataPlane) -> list[RepositoryModel]:
        meta = await dp.model_metadata("pinned")
        assert meta.inputs[0].shape == (-1, 3)
        with pytest.raises(InvalidInputError, match=r"expected shape \[-1, 3\]"):
            await dp.infer(infer_request("pinned", {"INPUT0": np.ones((1, 4), np.float32)}))
        return await dp.repository_index()

    rows = {r.name: r for r in with_dataplane(tmp_path, body)}
    assert "config says datatype INT8 but the model has FP32" in rows["wrongtype"].reason
