"""The non-infer REST routes: health, metadata, config, statistics, repository, shared memory."""

from __future__ import annotations

from typing import Any

from amlpkg.errors import AmlpkgError, NotFoundError
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.rest.shm_routes import handle_shared_memory
from amlpkg.runtime.types import ModelMetadata, TensorSpec

Answer = dict[str, Any] | list[Any] | bytes


class MethodNotAllowedError(AmlpkgError):
    """The route exists but not for this HTTP method; ``allow`` is the ``Allow`` header."""

    code = "method_not_allowed"
    http_status = 405

    def __init__(self, message: str, *, allow: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.allow = allow


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def model_metadata_json(meta: ModelMetadata) -> dict[str, Any]:
    """``GET /v2/models/{m}`` body from the data plane's :class:`ModelMetadata`."""
    doc: dict[str, Any] = {
        "name": meta.name,
        "versions": list(meta.versions),
        "platform": meta.platform,
        "inputs": [_tensor(t) for t in meta.inputs],
        "outputs": [_tensor(t) for t in meta.outputs],
    }
    if meta.parameters:
        doc["parameters"] = meta.parameters
    return doc


def _expect(method: str, wanted: str, path: str) -> None:
    """Refuse (405, with ``Allow``) any other method; a GET route also answers HEAD."""
    allowed = ("GET", "HEAD") if wanted == "GET" else (wanted,)
    if method not in allowed:
        raise MethodNotAllowedError(
            f"{path} takes {' or '.join(allowed)}, not {method}", allow=", ".join(allowed)
        )


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{key!r} must be true or false, got {value!r}")
    return value


async def _model_route(
    dp: DataPlane, name: str, rest: list[str], method: str, path: str
) -> tuple[int, Answer]:
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if not rest:
        _expect(method, "GET", path)
        return 200, model_metadata_json(await dp.model_metadata(name, version))
    if rest == ["ready"]:
        _expect(method, "GET", path)
        return (200 if await dp.model_ready(name, version) else 400), b""
    if rest == ["config"]:
        _expect(method, "GET", path)
        return 200, await dp.model_config(name, version)
    if rest == ["stats"]:
        _expect(method, "GET", path)
        return 200, await dp.model_statistics(name, version)
    raise NotFoundError(f"no route for {method} {path}")


async def handle_control(
    dp: DataPlane, parts: list[str], method: str, body: dict[str, Any], path: str
) -> tuple[int, Answer]:
    """Answer one control-plane request; ``parts`` is the split, unquoted path."""
    if parts[0] != "v2":
        raise NotFoundError(f"no route for {method} {path}", hint="the API lives under /v2")
    rest = parts[1:]
    if not rest:
        _expect(method, "GET", path)
        meta = await dp.server_metadata()
        return 200, {
            "name": meta.name,
            "version": meta.version,
            "extensions": list(meta.extensions),
        }
    if rest == ["health", "live"]:
        _expect(method, "GET", path)
        return (200 if await dp.live() else 503), b""
    if rest == ["health", "ready"]:
        _expect(method, "GET", path)
        return (200 if await dp.ready() else 503), b""
    if rest and rest[0] in ("systemsharedmemory", "cudasharedmemory"):
        if rest[-1] == "status":
            _expect(method, "GET", path)
        elif rest[-1] in ("register", "unregister"):
            _expect(method, "POST", path)
        return 200, handle_shared_memory(dp.shared_memory, rest, body, path)
    if rest == ["models", "stats"]:
        _expect(method, "GET", path)
        return 200, await dp.model_statistics()
    if len(rest) >= 2 and rest[0] == "models":
        return await _model_route(dp, rest[1], rest[2:], method, path)
    if rest == ["repository", "index"]:
        _expect(method, "POST", path)
        rows = await dp.repository_index(ready_only=_flag(body, "ready"))
        return 200, [
            {"name": r.name, "version": r.version, "state": r.state, "reason": r.reason}
            for r in rows
        ]
    if len(rest) == 4 and rest[:2] == ["repository", "models"] and rest[3] in ("load", "unload"):
        _expect(method, "POST", path)
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInputError("'parameters' must be an object")
        if rest[3] == "load":
            await dp.load_model(rest[2], params or None)
        else:
            await dp.unload_model(rest[2], bool(params.get("unload_dependents", False)))
        return 200, b""
    raise NotFoundError(f"no route for {method} {path}")
