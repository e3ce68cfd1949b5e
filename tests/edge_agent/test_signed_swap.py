"""The agent verifies OpenSSF Model Signing bundles offline before a swap.

In-process: a runtime data plane serving a repository, the agent's swapper with the
device's trust anchor. A flipped byte, a missing signature, another key's signature
and a replayed older version (below the twin's min_version) are each refused, the
verification result is what the agent reports, and the signed version keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from amlpkg.edge_agent.desired import DesiredModel, parse_desired
from amlpkg.edge_agent.swap import ModelSwapper
from amlpkg.errors import AmlpkgError
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.signing import Trust
from tests.signing_helpers import SignedFolders, signed_folders

NAME = "adder"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> SignedFolders:
    return signed_folders(tmp_path_factory.mktemp("signed"), NAME)


def desired(folder: Path, version: int, *, signed: bool = True) -> DesiredModel:
    model = folder / MODEL_FILE
    return DesiredModel(
        name=NAME,
        version=str(version),
        sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        url=model.as_uri(),
        signature_url=(folder / SIGNATURE_FILE).as_uri() if signed else None,
        release_url=(folder / RELEASE_FILE).as_uri() if signed else None,
    )


@asynccontextmanager
async def device(tmp: Path, trust: Path) -> AsyncIterator[tuple[DataPlane, ModelSwapper]]:
    repo = tmp / "repo"
    repo.mkdir()
    dp = DataPlane.from_repository(repo)
    await dp.start()
    try:
        yield dp, ModelSwapper(dp, repo, tmp / "state", trust=Trust(trust))
    finally:
        await dp.stop()


def _flipped(folder: Path, tmp: Path) -> Path:
    copy = tmp / "flipped"
    shutil.copytree(folder, copy)
    data = bytearray((copy / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / MODEL_FILE).write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("flipped byte", "Hash mismatch"),
        ("missing signature", "carries no signature"),
        ("other key", "Key mismatch"),
        ("replayed older version", "below min_version"),
        ("relabelled older version", "signature is for adder:1"),
    ],
)
def test_refused_models_leave_the_signed_version_serving(
    folders: SignedFolders, tmp_path: Path, attack: str, reason: str
) -> None:
    asyncio.run(_refused(folders, tmp_path, attack, reason))


async def _refused(folders: SignedFolders, tmp_path: Path, attack: str, reason: str) -> None:
    async with device(tmp_path, folders.trusted) as (dp, swapper):
        swapper.min_version = 2
        assert await swapper.apply(desired(folders.v2, 2))
        assert swapper.state.last_verification is not None
        assert swapper.state.last_verification["signature_verified"] == "true"
        assert swapper.state.last_verification["signed_version"] == "2"
        if attack == "flipped byte":
            bad = desired(_flipped(folders.v2, tmp_path), 3)
        elif attack == "missing signature":
            bad = desired(folders.v2, 3, signed=False)
        elif attack == "other key":
            bad = desired(folders.v2_other_key, 3)
        elif attack == "replayed older version":
            bad = desired(folders.v1, 1)
        else:  # the twin says version 3 but the signed release says 1
            bad = desired(folders.v1, 3)
        with pytest.raises(AmlpkgError, match=reason):
            await swapper.apply(bad)
        assert swapper.state.current is not None and swapper.state.current.version == "2"
        assert swapper.state.last_verification["signature_verified"] == "false"
        assert reason in swapper.state.last_verification["error"]
        assert reason in (swapper.state.last_error or "")
        metadata = await dp.model_metadata(NAME)
        assert metadata.versions == ("2",)


def test_the_twin_carries_min_version_and_signature_urls(folders: SignedFolders) -> None:
    doc = {"model": desired(folders.v2, 2).model_dump(), "min_version": 2}
    state = parse_desired(doc)
    assert state.min_version == 2
    assert state.model is not None and state.model.signature_url is not None
    with pytest.raises(AmlpkgError, match="signature_url"):
        parse_desired({"model": {**doc["model"], "signature_url": "ftp://x/model.sig"}})
