"""A thin typed client over the team server's ``/api/v1`` (httpx), in one place.

Every failure comes back as an error of :mod:`amlpkg.errors` with the server's own
message and hint: the server answers ``{"error", "code", "hint"}`` and the code
picks the class. A server that cannot be reached is :class:`UnavailableError`.
The token goes in the ``Authorization`` header only, never in a URL, a log or a
message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from amlpkg.errors import (
    AlreadyExistsError,
    AmlpkgError,
    FailedPreconditionError,
    IntegrityError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnavailableError,
)
from amlpkg.release import sha256_file
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.store.runs import RunInfo

API = "/api/v1"
_CHUNK = 1024 * 1024
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
Json = dict[str, Any]


# Belongs in amlpkg.errors beside UnauthenticatedError (the server keeps its twin in
# amlpkg.server.roles for the same reason); here until the core has it.
class PermissionDeniedError(AmlpkgError):
    """The token is valid but its role does not allow the action."""

    code = "permission_denied"
    http_status = 403


_BY_CODE: dict[str, type[AmlpkgError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        PayloadTooLargeError,
        UnavailableError,
        UnauthenticatedError,
        IntegrityError,
        PermissionDeniedError,
    )
}
_BY_STATUS: dict[int, type[AmlpkgError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: AlreadyExistsError,
    413: PayloadTooLargeError,
    429: UnavailableError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def error_from(response: httpx.Response) -> AmlpkgError:
    """The :mod:`amlpkg.errors` error a failed answer stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = str(body.get("code") or "")
        cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code, InternalError)
        hint = body.get("hint")
        return cls(body["error"], hint=hint if isinstance(hint, str) else None)
    # Not our server's error body: a proxy, a load balancer, or not an amlpkg server.
    cls = _BY_STATUS.get(response.status_code, InternalError)
    return cls(
        f"the server answered {response.status_code} {response.reason_phrase}"
        f" to {response.request.method} {response.request.url.path}",
        hint="check the URL points at an amlpkg server",
    )


file_sha256 = sha256_file  # ``(sha256 hex, size)`` of a file, read in chunks


def file_chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes in 1 MiB chunks (a streamed request body)."""
    with path.open("rb") as source:
        yield from iter(lambda: source.read(_CHUNK), b"")


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential, capped, jittered."""
    return float(random.uniform(0.5, 1.0) * min(cap, base * 2 ** (attempt - 1)))


class TeamClient:
    """Calls to one team server with one token. Use as a context manager or ``close()``."""

    def __init__(self, server: Server, *, timeout: float = 30.0, retries: int = 2) -> None:
        self.server = server
        self.retries = retries  # extra tries of idempotent calls after a transport failure
        self._http = httpx.Client(
            base_url=server.url + API,
            headers={"Authorization": f"Bearer {server.token}", "User-Agent": "amlpkg-client"},
            timeout=timeout,
            follow_redirects=False,  # a redirect could carry the token to another host
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> TeamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one call; answer the response or raise the matching amlpkg error.

        Idempotent calls (GET/PUT by default) are retried after transport failures
        and 502/503/504 answers, ``self.retries`` times with backoff.
        """
        retry = (method in ("GET", "PUT", "DELETE")) if idempotent is None else idempotent
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt < attempts:
                    time.sleep(backoff(attempt))
                    continue
                raise UnavailableError(
                    f"cannot reach the team server at {self.server.url}: {type(exc).__name__}",
                    hint="check the URL and that the server runs (amlpkg server)",
                ) from None
            if response.status_code in RETRYABLE_STATUS and attempt < attempts:
                time.sleep(backoff(attempt))
                continue
            if response.is_error:
                raise error_from(response)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """An answer read as it arrives (large files); errors as :meth:`request`, not retried."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise error_from(response)
                yield response
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"lost the team server at {self.server.url}: {type(exc).__name__}",
                hint="check the URL and that the server runs (amlpkg server)",
            ) from None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- access ---------------------------------------------------------------
    def health(self) -> Json:
        """``/health``: the server answers (no token needed)."""
        body = self._json("GET", "/health")
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise FailedPreconditionError(f"{self.server.url} is not a healthy amlpkg server")
        return body

    def check_token(self) -> None:
        """Raise :class:`UnauthenticatedError` unless the token is valid (any role)."""
        self.request("GET", "/experiments")

    # -- runs -----------------------------------------------------------------
    def create_run(
        self,
        experiment: str | None,
        name: str | None,
        tags: dict[str, str] | None = None,
        info: RunInfo | None = None,
    ) -> Json:
        """A new run (status running); its experiment is made if needed. ``info``: where it
        runs (command, git commit, Python, host); the server records the token's user."""
        body: dict[str, Any] = {"experiment": experiment, "name": name, "tags": tags or {}}
        if info is not None:
            fields = ("command", "git_commit", "git_dirty", "python_version", "host")
            body.update({k: getattr(info, k) for k in fields if getattr(info, k) is not None})
        return dict(self._json("POST", "/runs", json=body))

    def get_run(self, ref: str) -> Json:
        """One run (id or unique prefix) with params, final metrics and tags."""
        return dict(self._json("GET", f"/runs/{quote(ref, safe='')}"))

    def list_runs(
        self,
        experiment: str | None = None,
        status: str | None = None,
        limit: int = 50,
        *,
        search: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        offset: int = 0,
    ) -> list[Json]:
        """Runs, newest first (or by ``sort``), filtered by the server (see ``GET /runs``)."""
        params: dict[str, Any] = {"limit": limit}
        optional = {"experiment": experiment, "status": status, "q": search, "sort": sort,
                    "order": order, "offset": offset or None}  # fmt: skip
        params.update({k: v for k, v in optional.items() if v is not None})
        return list(self._json("GET", "/runs", params=params))

    def log_batch(self, run_id: str, body: Json) -> Json:
        """Params, metrics and tags in one call (not retried here: the spool retries)."""
        return dict(self._json("POST", f"/runs/{run_id}/log-batch", json=body, idempotent=False))

    def end_run(self, run_id: str, status: str, exit_code: int | None = None) -> Json:
        """End a run with its final status (ending twice is harmless: retried)."""
        body = {"status": status, "exit_code": exit_code}
        return dict(self._json("POST", f"/runs/{run_id}/end", json=body, idempotent=True))

    def list_artifacts(self, run_id: str) -> list[Json]:
        """Path, sha256 and size of every artifact of a run."""
        return list(self._json("GET", f"/runs/{run_id}/artifacts"))

    def upload_artifact(self, run_id: str, path: str, file: Path) -> Json:
        """Stream ``file`` as artifact ``path``; the server checks its sha256 before storing.

        A large file goes straight to the server's bucket instead (:mod:`.direct`).
        """
        digest, size = file_sha256(file)
        sent = self._send_direct(file, digest, size)
        if sent is not None:
            commit = f"/uploads/{sent.pop('upload_id')}/artifact"
            body = {**sent, "run": run_id, "path": path}
            return dict(self._json("POST", commit, json=body, idempotent=False))
        url = f"/runs/{run_id}/artifacts/{quote(path, safe='/')}"
        # A fresh generator each try: PUT of the same bytes to the same path is idempotent.
        for attempt in range(1, self.retries + 2):
            try:
                return dict(
                    self._json(
                        "PUT",
                        url,
                        params={"sha256": digest},
                        content=file_chunks(file),
                        headers={
                            "Content-Length": str(size),
                            "Content-Type": "application/octet-stream",
                        },
                        idempotent=False,
                    )
                )
            except UnavailableError:
                if attempt > self.retries:
                    raise
                time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def _send_direct(self, file: Path, digest: str, size: int) -> Json | None:
        """A large file sent to the bucket (the commit's body), or None: stream it here."""
        from amlpkg.trainer.remote import direct  # it needs this class

        return direct.send(self, file, digest, size) if size >= direct.threshold() else None

    # -- models ---------------------------------------------------------------
    def list_models(self) -> list[Json]:
        """One summary per model."""
        return list(self._json("GET", "/models"))

    def list_versions(self, name: str) -> list[Json]:
        """Every version of a model, newest first."""
        return list(self._json("GET", f"/models/{quote(name, safe='')}/versions"))

    def get_version(self, name: str, version: int) -> Json:
        """One version."""
        return dict(self._json("GET", f"/models/{quote(name, safe='')}/versions/{int(version)}"))

    def get_alias(self, name: str, alias: str) -> Json:
        """The version an alias points at."""
        return dict(
            self._json("GET", f"/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}")
        )

    def register_version(
        self, name: str, source: str, tags: dict[str, str], description: str | None
    ) -> Json:
        """Register ``runs:/RUN/PATH`` (an artifact on the server) as the next version."""
        body = {"source": source, "tags": tags, "description": description}
        return dict(self._json("POST", f"/models/{quote(name, safe='')}/versions", json=body))

    def upload_version(
        self, name: str, file: Path, *, run: str | None, description: str | None
    ) -> Json:
        """Register a local ONNX file (streamed, sha256 checked) as the next version."""
        digest, size = file_sha256(file)
        sent = self._send_direct(file, digest, size)
        if sent is not None:
            commit = f"/uploads/{sent.pop('upload_id')}/model-version"
            body = {**sent, "name": name, "filename": file.name, "run": run}
            body["description"] = description
            return dict(self._json("POST", commit, json=body, idempotent=False))
        params: dict[str, Any] = {"sha256": digest, "filename": file.name}
        if run is not None:
            params["run"] = run
        if description is not None:
            params["description"] = description
        return dict(
            self._json(
                "POST",
                f"/models/{quote(name, safe='')}/versions/upload",
                params=params,
                content=file_chunks(file),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
        )

    def set_alias(self, name: str, alias: str, version: int) -> Json:
        """Point ``NAME@ALIAS`` at ``version``."""
        url = f"/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}"
        return dict(self._json("PUT", url, json={"version": int(version)}))

    def version_lineage(self, name: str, version: int) -> Json:
        """The version, its run (with artifacts) and the edges around it, described."""
        return dict(
            self._json("GET", f"/models/{quote(name, safe='')}/versions/{int(version)}/lineage")
        )
