"""A separate scoring module (``python -m amlpkg.runtime``) driven over KServe v2 HTTP.

Models are pushed with Triton's repository load call and file override
(``parameters: {"config": "<json>", "file:<version>/model.onnx": "<base64>"}``), so
the scoring module needs no shared volume with the agent. The standard library's
HTTP client runs in worker threads: an edge device installs no extra HTTP package.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlpkg.edge_agent.backend import MODEL_FILE, SMOKE_ID, smoke_shape
from amlpkg.errors import (
    AmlpkgError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnavailableError,
)

if TYPE_CHECKING:
    from prometheus_client import Metric

_BY_STATUS: dict[int, type[AmlpkgError]] = {
    400: FailedPreconditionError,
    401: UnauthenticatedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}


class RemoteBackend:
    """The scoring module at ``base_url`` (e.g. ``http://scoring:8000``).

    ``token``: the scoring module's auth token (its ``AMLPKG_SERVER_AUTH_TOKEN``), sent
    as ``Authorization: Bearer``; health calls need none.
    """

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout_s: float = 300.0
    ) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidArgumentError(
                f"scoring URL {base_url!r} is not an http(s) URL",
                hint="set AMLPKG_EDGE_SCORING_URL / --scoring-url to http://<module>:8000",
            )
        self.base_url = base_url.rstrip("/")
        self._token = token
        # Loads build ONNX Runtime sessions, which can take minutes for big models.
        self.timeout_s = timeout_s

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(f"{self.base_url}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the answer's socket
                return int(exc.code), bytes(exc.read())
        except (OSError, ValueError) as exc:
            raise UnavailableError(
                f"scoring module {self.base_url} is not reachable: {exc}",
                hint="check the scoring module is running and AMLPKG_EDGE_SCORING_URL",
            ) from None

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, what: str = ""
    ) -> bytes:
        status, content = await asyncio.to_thread(self._call, method, path, body)
        if status < 300:
            return content
        try:
            reason = str(json.loads(content).get("error", ""))
        except (ValueError, AttributeError):
            reason = content[:200].decode("utf-8", "replace")
        error = _BY_STATUS.get(status, FailedPreconditionError)
        hint = None
        if status == 413:
            hint = "raise the scoring module's --max-request-size (AMLPKG_SERVER_MAX_REQUEST_SIZE)"
        elif status == 401:
            hint = "set AMLPKG_EDGE_SCORING_TOKEN to the scoring module's auth token"
        raise error(f"scoring module: {what or path} failed (HTTP {status}): {reason}", hint=hint)

    def _path(self, name: str, tail: str = "") -> str:
        return f"/v2/models/{urllib.parse.quote(name, safe='')}{tail}"

    async def live(self) -> bool:
        """``GET /v2/health/live`` answers 200."""
        try:
            await self._request("GET", "/v2/health/live")
        except AmlpkgError:
            return False
        return True

    async def serve(self, name: str, version: int, model: Path, config: dict[str, Any]) -> None:
        """Push the file and config with one load call; the old version serves on failure."""
        data = await asyncio.to_thread(model.read_bytes)
        body = {
            "parameters": {
                "config": json.dumps(config),
                f"file:{version}/{MODEL_FILE}": base64.b64encode(data).decode("ascii"),
            }
        }
        quoted = urllib.parse.quote(name, safe="")
        await self._request(
            "POST", f"/v2/repository/models/{quoted}/load", body, f"loading {name}:{version}"
        )

    async def remove(self, name: str) -> None:
        """Unload the model on the scoring module."""
        quoted = urllib.parse.quote(name, safe="")
        await self._request("POST", f"/v2/repository/models/{quoted}/unload", {}, f"unload {name}")

    async def reload(self, name: str, version: int, model: Path, config: dict[str, Any]) -> None:
        """Push the served model again (the scoring module keeps no copy across restarts)."""
        await self.serve(name, version, model, config)

    async def metadata(self, name: str) -> dict[str, Any]:
        """``GET /v2/models/{name}``."""
        content = await self._request("GET", self._path(name), what=f"metadata of {name}")
        return dict(json.loads(content))

    async def smoke_test(self, name: str) -> None:
        """One JSON inference with zero inputs shaped from the model metadata."""
        meta = await self.metadata(name)
        inputs = []
        for spec in meta.get("inputs", []):
            shape = smoke_shape(int(d) for d in spec["shape"])
            count = 1
            for dim in shape:
                count *= dim
            fill = {"BYTES": "", "BOOL": False}.get(spec["datatype"], 0)
            inputs.append(
                {
                    "name": spec["name"],
                    "datatype": spec["datatype"],
                    "shape": list(shape),
                    "data": [fill] * count,
                }
            )
        body = {"id": SMOKE_ID, "inputs": inputs}
        await self._request("POST", self._path(name, "/infer"), body, f"smoke inference of {name}")

    async def is_ready(self, name: str, version: str) -> bool:
        """``GET /v2/models/{name}/versions/{version}/ready`` answers 200."""
        path = self._path(name, f"/versions/{urllib.parse.quote(version, safe='')}/ready")
        try:
            status, _ = await asyncio.to_thread(self._call, "GET", path)
        except UnavailableError:
            return False
        return status == 200

    async def providers(self, name: str) -> list[str]:
        """Providers from the metadata's ``execution_providers`` parameter."""
        meta = await self.metadata(name)
        return list(meta.get("parameters", {}).get("execution_providers", []))

    async def metric_families(self) -> Iterable[Metric]:
        """The scoring module's ``/metrics``, parsed."""
        from prometheus_client.parser import text_string_to_metric_families

        content = await self._request("GET", "/metrics", what="reading metrics")
        return list(text_string_to_metric_families(content.decode("utf-8")))
