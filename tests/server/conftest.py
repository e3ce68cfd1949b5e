"""The team server in-process (ASGI transport) with a token per role, and a tiny ONNX model."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from amlpkg.server import tokens
from amlpkg.server.app import create_app
from amlpkg.server.roles import Role
from amlpkg.server.settings import ServerSettings
from amlpkg.store.workspace import open_workspace

ROLES = ("reader", "contributor", "owner")


class Api:
    """A synchronous client over the app's ASGI interface (no sockets)."""

    def __init__(self, app: FastAPI, token: str | None = None) -> None:
        self.app = app
        self.headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request and read the whole answer."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                headers = {**self.headers, **kwargs.pop("headers", {})}
                return await client.request(method, url, headers=headers, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)


def make_token(home: Path, role: str, **kwargs: Any) -> tuple[str, str]:
    """``(token text, token id)`` of a new token in the workspace at ``home``."""
    with open_workspace(home) as ws:
        text, info = tokens.create_token(
            ws, role=Role(role), name=kwargs.get("name", role), created_by="test",
            expires=kwargs.get("expires"),
        )  # fmt: skip
    return text, info.id


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def onnx_bytes() -> bytes:
    """A valid one-node ONNX model (Relu over a float vector)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("AMLPKG_HOME", raising=False)
    return tmp_path / "ws"


@pytest.fixture
def app(home: Path) -> Iterator[FastAPI]:
    limits = ServerSettings(max_json_bytes=64 * 1024, max_artifact_bytes=4096)
    server = create_app(home, limits)
    yield server
    server.state.amlpkg.close()


@pytest.fixture
def role_tokens(app: FastAPI, home: Path) -> dict[str, str]:
    return {role: make_token(home, role)[0] for role in ROLES}


@pytest.fixture
def api(app: FastAPI, role_tokens: dict[str, str]) -> dict[str, Api]:
    """A client per role, and ``anonymous`` without a token."""
    clients = {role: Api(app, token) for role, token in role_tokens.items()}
    clients["anonymous"] = Api(app)
    return clients
