"""Triton's system shared-memory extension, driven by NVIDIA's own client utilities
(``tritonclient.utils.shared_memory``) unchanged, over HTTP and gRPC; and the ways a
caller could abuse it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.runtime.conftest import ServerProcess

pytestmark = pytest.mark.slow
DATA = np.arange(8, dtype=np.float32).reshape(2, 4)
NBYTES = DATA.nbytes


@pytest.fixture
def regions() -> Iterator[tuple[str, object, str, object]]:
    """An input region holding DATA and an empty output region (keys unique per test)."""
    tag = uuid.uuid4().hex[:8]
    in_key, out_key = f"/amlpkg_in_{tag}", f"/amlpkg_out_{tag}"
    in_handle = shm.create_shared_memory_region("in", in_key, NBYTES)
    out_handle = shm.create_shared_memory_region("out", out_key, NBYTES)
    shm.set_shared_memory_region(in_handle, [DATA])
    try:
        yield in_key, in_handle, out_key, out_handle
    finally:
        shm.destroy_shared_memory_region(in_handle)
        shm.destroy_shared_memory_region(out_handle)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_http_client_infers_through_shared_memory(server: ServerProcess, regions: tuple) -> None:
    in_key, _, out_key, out_handle = regions
    client = httpclient.InferenceServerClient(server.http_url)
    in_name, out_name = _unique("in"), _unique("out")
    client.register_system_shared_memory(in_name, in_key, NBYTES)
    client.register_system_shared_memory(out_name, out_key, NBYTES)
    try:
        status = {r["name"]: r for r in client.get_system_shared_memory_status()}
        assert status[in_name]["key"] == in_key and status[in_name]["byte_size"] == NBYTES
        inp = httpclient.InferInput("INPUT0", list(DATA.shape), "FP32")
        inp.set_shared_memory(in_name, NBYTES)
        out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
        out.set_shared_memory(out_name, NBYTES)
        result = client.infer("identity_fp32", [inp], outputs=[out])
        output = result.get_output("OUTPUT0")
        # As Triton answers: no parameters (NVIDIA's C++ client would read them as binary).
        assert "parameters" not in output and "data" not in output
        got = shm.get_contents_as_numpy(out_handle, np.float32, output["shape"])
        np.testing.assert_array_equal(got, DATA)
    finally:
        client.unregister_system_shared_memory(in_name)
        client.unregister_system_shared_memory(out_name)
        names = {r["name"] for r in client.get_system_shared_memory_status()}
        client.close()
    assert in_name not in names and out_name not in names


def test_grpc_client_infers_through_shared_memory(server: ServerProcess, regions: tuple) -> None:
    in_key, _, out_key, out_handle = regions
    client = grpcclient.InferenceServerClient(server.grpc_url)
    in_name, out_name = _unique("in"), _unique("out")
    client.register_system_shared_memory(in_name, in_key, NBYTES)
    client.register_system_shared_memory(out_name, out_key, NBYTES)
    try:
        status = client.get_system_shared_memory_status(region_name=in_name)
        assert status.regions[in_name].key == in_key
        inp = grpcclient.InferInput("INPUT0", list(DATA.shape), "FP32")
        inp.set_shared_memory(in_name, NBYTES)
        out = grpcclient.InferRequestedOutput("OUTPUT0")
        out.set_shared_memory(out_name, NBYTES)
        result = client.infer("identity_fp32", [inp], outputs=[out])
        output = result.get_output("OUTPUT0")
        got = shm.get_contents_as_numpy(out_handle, np.float32, list(output.shape))
        np.testing.assert_array_equal(got, DATA)
        # Mixed: shared-memory input, output in the response.
        plain = client.infer("identity_fp32", [inp]).as_numpy("OUTPUT0")
        np.testing.assert_array_equal(plain, DATA)
    finally:
        client.unregister_system_shared_memory()  # all
        client.close()


def _register(
    server: ServerProcess, name: str, key: str, size: int, offset: int = 0
) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v2/systemsharedmemory/region/{name}/register",
        content=orjson.dumps({"key": key, "offset": offset, "byte_size": size}),
        timeout=30,
    )


@pytest.mark.parametrize(
    "key",
    [
        "/../../etc/passwd",
        "../etc/hostname",
        "/etc/hostname",
        "/a/b",
        "/..",
        "/nope_" + "x" * 8,
        "",
    ],
)
def test_keys_outside_dev_shm_are_refused(server: ServerProcess, key: str) -> None:
    response = _register(server, _unique("evil"), key, 8)
    assert response.status_code == 400, response.text
    assert "Unable to open shared memory region" in response.json()["error"]


def test_symlinks_and_fifos_in_dev_shm_are_refused(server: ServerProcess, tmp_path: Path) -> None:
    link = Path("/dev/shm") / _unique("amlpkg_link")
    fifo = Path("/dev/shm") / _unique("amlpkg_fifo")
    link.symlink_to("/etc/hostname")
    os.mkfifo(fifo)
    try:
        for path in (link, fifo):
            response = _register(server, _unique("evil"), "/" + path.name, 4)
            assert response.status_code == 400, response.text
    finally:
        link.unlink()
        fifo.unlink()


def test_spans_outside_the_region_are_refused(server: ServerProcess, regions: tuple) -> None:
    in_key = regions[0]
    assert _register(server, _unique("big"), in_key, NBYTES + 1).status_code == 400
    assert _register(server, _unique("off"), in_key, NBYTES, offset=1).status_code == 400
    name = _unique("ok")
    assert _register(server, name, in_key, NBYTES).status_code == 200
    assert _register(server, name, in_key, NBYTES).status_code == 409  # already in manager
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        inp = httpclient.InferInput("INPUT0", list(DATA.shape), "FP32")
        inp.set_shared_memory(name, NBYTES, offset=4)  # 4 + 32 > 32 bytes
        with pytest.raises(InferenceServerException, match="outside shared memory region"):
            client.infer("identity_fp32", [inp])
        small = httpclient.InferRequestedOutput("OUTPUT0")
        small.set_shared_memory(name, 8)  # too small for the 32-byte output
        whole = httpclient.InferInput("INPUT0", list(DATA.shape), "FP32")
        whole.set_shared_memory(name, NBYTES)
        with pytest.raises(InferenceServerException, match="should be at least 32 bytes"):
            client.infer("identity_fp32", [whole], outputs=[small])
        unknown = httpclient.InferInput("INPUT0", list(DATA.shape), "FP32")
        unknown.set_shared_memory("never_registered", NBYTES)
        with pytest.raises(InferenceServerException, match="Unable to find system shared memory"):
            client.infer("identity_fp32", [unknown])
    finally:
        client.unregister_system_shared_memory(name)
        client.close()


def test_a_region_truncated_by_its_owner_is_refused_not_a_crash(
    server: ServerProcess, regions: tuple
) -> None:
    in_key = regions[0]
    name = _unique("shrink")
    assert _register(server, name, in_key, NBYTES).status_code == 200
    os.truncate(Path("/dev/shm") / in_key.lstrip("/"), 4)
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        inp = httpclient.InferInput("INPUT0", list(DATA.shape), "FP32")
        inp.set_shared_memory(name, NBYTES)
        with pytest.raises(InferenceServerException, match="truncated"):
            client.infer("identity_fp32", [inp])
        assert client.is_server_live()
    finally:
        client.unregister_system_shared_memory(name)
        client.close()
