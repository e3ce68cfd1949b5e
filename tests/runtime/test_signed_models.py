"""A real server with ``--require-signature``: only versions signed by the trusted key load.

Each attack goes through the repository load API (Triton's file overrides) against a
server already serving a signed version: a flipped byte, a missing signature, another
key's signature, an older signed version replayed. Each is refused with 400 and the
signed version keeps serving. Startup refuses an unsigned repository model too.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE
from tests.runtime.conftest import ServerProcess, start_server
from tests.signing_helpers import SignedFolders, signed_folders

NAME = "adder"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> SignedFolders:
    return signed_folders(tmp_path_factory.mktemp("signed"), NAME)


@pytest.fixture(scope="module")
def server(
    signed: SignedFolders, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(signed.v2, repo / NAME / "1")
    unsigned = repo / "unsigned" / "1"
    unsigned.mkdir(parents=True)
    shutil.copyfile(signed.v2 / MODEL_FILE, unsigned / MODEL_FILE)
    running = start_server(
        repo,
        tmp_path_factory.mktemp("server"),
        "--require-signature",
        "--trust",
        str(signed.trusted),
        "--strict-readiness",
        "false",
    )
    try:
        yield running
    finally:
        running.stop()


def _load(server: ServerProcess, files: dict[str, bytes]) -> httpx.Response:
    params = {f"file:1/{k}": base64.b64encode(v).decode() for k, v in files.items()}
    return httpx.post(
        f"{server.base_url}/v2/repository/models/{NAME}/load",
        json={"parameters": params},
        timeout=60,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _serving_v2(server: ServerProcess, signed: SignedFolders) -> None:
    meta = httpx.get(f"{server.base_url}/v2/models/{NAME}").json()
    assert meta["parameters"]["signed_version"] == "2"
    infer = httpx.post(
        f"{server.base_url}/v2/models/{NAME}/infer",
        json={
            "inputs": [
                {"name": n, "shape": [1, 16], "datatype": "FP32", "data": [1.0] * 16}
                for n in ("INPUT0", "INPUT1")
            ]
        },
    )
    assert infer.status_code == 200, infer.text


def test_signed_model_serves_with_its_digest_and_signer(
    server: ServerProcess, signed: SignedFolders
) -> None:
    meta = httpx.get(f"{server.base_url}/v2/models/{NAME}").json()
    params = meta["parameters"]
    assert params["signature_verified"] == "true"
    assert params["signature_digest"].startswith("sha256:")
    assert params["signature_signer"].startswith("key:sha256:")
    metrics = httpx.get(f"{server.base_url}/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("amlpkg_model_signature{"))
    assert params["signature_digest"] in line and params["signature_signer"] in line
    _serving_v2(server, signed)


def test_unsigned_repository_model_is_refused_at_startup(server: ServerProcess) -> None:
    index = httpx.post(f"{server.base_url}/v2/repository/index", json={}).json()
    unsigned = [m for m in index if m["name"] == "unsigned"]
    assert unsigned and unsigned[0]["state"] == "UNAVAILABLE"
    assert "no signature" in unsigned[0]["reason"]


def _flip(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    return bytes(flipped)


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("flipped model byte", "Hash mismatch"),
        ("flipped release byte", "Hash mismatch"),
        ("missing signature", "no signature"),
        ("other key", "Key mismatch"),
        ("replayed older version", "older than"),
    ],
)
def test_attacks_are_refused_and_the_signed_version_keeps_serving(
    server: ServerProcess, signed: SignedFolders, attack: str, reason: str
) -> None:
    files = _files(signed.v2)
    if attack == "flipped model byte":
        files[MODEL_FILE] = _flip(files[MODEL_FILE])
    elif attack == "flipped release byte":
        files[RELEASE_FILE] = files[RELEASE_FILE].replace(b'"version": 2', b'"version": 9')
    elif attack == "missing signature":
        del files[SIGNATURE_FILE]
    elif attack == "other key":
        files = _files(signed.v2_other_key)
    else:
        files = _files(signed.v1)
    answer = _load(server, files)
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]
    _serving_v2(server, signed)


def test_the_signed_version_reloads_through_the_load_api(
    server: ServerProcess, signed: SignedFolders
) -> None:
    answer = _load(server, _files(signed.v2))
    assert answer.status_code == 200, answer.text
    _serving_v2(server, signed)


def test_a_replay_after_a_restart_is_refused_with_a_state_folder(
    signed: SignedFolders, tmp_path: Path
) -> None:
    """The highest signed version served is kept in the state folder, so a server that
    restarts on a repository where someone put the older signed v1 refuses it."""
    repo, state = tmp_path / "repo", tmp_path / "state"
    shutil.copytree(signed.v2, repo / NAME / "1")
    args = ["--require-signature", "--trust", str(signed.trusted), "--state-dir", str(state)]
    first = start_server(repo, tmp_path, *args)
    try:
        _serving_v2(first, signed)
    finally:
        assert first.stop() == 0
    assert '"adder": 2' in (state / "signed-floors.json").read_text()
    shutil.rmtree(repo / NAME / "1")
    shutil.copytree(signed.v1, repo / NAME / "1")  # the replay, while the server was down
    second = start_server(repo, tmp_path, *args, "--strict-readiness", "false")
    try:
        index = httpx.post(f"{second.base_url}/v2/repository/index", json={}).json()
        entry = next(m for m in index if m["name"] == NAME)
        assert entry["state"] == "UNAVAILABLE" and "older than" in entry["reason"]
    finally:
        second.stop()
