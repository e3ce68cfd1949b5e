"""Triton's ``format`` of image inputs reaches the model config its image clients read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import ModelLoadError
from tests.runtime import toy_models


def _config(tmp_path: Path, text: str) -> dict:
    toy_models.save(toy_models.identity_model("FP32", ("batch", 3, 8, 8)), tmp_path, "img")
    (tmp_path / "img" / "config.yaml").write_text(text)

    async def main() -> dict:
        dp = DataPlane.from_repository(tmp_path, environ={})
        await dp.start()
        try:
            return await dp.model_config("img")
        finally:
            await dp.stop()

    return asyncio.run(main())


def test_format_from_config_yaml(tmp_path: Path) -> None:
    config = _config(tmp_path, "max_batch_size: 4\ninputs: {INPUT0: {format: FORMAT_NCHW}}\n")
    assert config["input"][0]["format"] == "FORMAT_NCHW"
    assert config["input"][0]["dims"] == [3, 8, 8]


def test_format_defaults_to_none_and_typos_fail(tmp_path: Path) -> None:
    assert _config(tmp_path, "max_batch_size: 4\n")["input"][0]["format"] == "FORMAT_NONE"
    with pytest.raises(ModelLoadError, match="format"):
        from amlpkg.runtime.model_config import parse_model_config

        parse_model_config({"inputs": {"INPUT0": {"format": "NCHW"}}}, "test")
