"""The link for devices managed without IoT Hub: poll a desired-state file or URL.

Reported state goes to ``<state_dir>/reported.json``; telemetry is POSTed as JSON to
the collector's ``/v1/devices`` endpoint when ``telemetry_url`` is set (otherwise it
stays in the bounded outbox, whose drops are counted and reported). A team server's
receiver wants a contributor token: ``telemetry_token`` (or the content of
``telemetry_token_file``) is sent as ``Authorization: Bearer``; a 401/403 keeps the
telemetry queued and says why. The token file is re-read when it changes (a stat before
each POST) and after each refusal, so rotating the token needs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from amlpkg.edge_agent.link import DesiredHandler, MethodHandler
from amlpkg.edge_agent.outbox import OutboxMessage
from amlpkg.errors import InvalidArgumentError, UnavailableError
from amlpkg.token_file import read_token_file

log = logging.getLogger(__name__)


def _read_source(source: str) -> bytes:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https", "file"):
        try:
            with urllib.request.urlopen(source, timeout=15) as response:
                return bytes(response.read())
        except (OSError, ValueError) as exc:
            raise UnavailableError(f"cannot read desired state from {source}: {exc}") from None
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UnavailableError(
            f"cannot read desired state file {source}: {exc.strerror or exc}",
            hint="write the desired-state JSON there, or pass an http(s):// URL",
        ) from None


TOKEN_OPTION = "--telemetry-token-file"


class _TokenFile:
    """A token file read at start, and again whenever its stat (inode, size, mtime) changes.

    A Kubernetes Secret is rotated by swapping a symlink, an operator rewrites the file:
    either changes the stat. A file caught half-written (empty) keeps the previous token.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self.token = read_token_file(path, TOKEN_OPTION)  # unreadable at start: refuse to start

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self, *, force: bool = False) -> str:
        """The token, re-read first if the file changed (or ``force``: after a refusal)."""
        stamp = self._stat()
        if stamp is None or (stamp == self._stamp and not force):
            return self.token
        self._stamp = stamp
        try:
            token = read_token_file(self.path, TOKEN_OPTION)
        except InvalidArgumentError as exc:
            log.warning("%s; keeping the previous telemetry token", exc.message)
            return self.token
        if token != self.token:
            log.info("telemetry token re-read from %s", self.path.name)  # never the token itself
            self.token = token
        return self.token


class StandaloneLink:
    """Polls ``source`` every ``poll_interval_s``; calls the handler when its content changes."""

    def __init__(
        self,
        source: str,
        state_dir: Path,
        *,
        telemetry_url: str | None = None,
        telemetry_token: str | None = None,
        telemetry_token_file: Path | None = None,
        poll_interval_s: float = 10.0,
    ) -> None:
        self.source = source
        self.state_dir = state_dir
        self.telemetry_url = telemetry_url.rstrip("/") if telemetry_url else None
        self._token_file = _TokenFile(telemetry_token_file) if telemetry_token_file else None
        self._token = telemetry_token
        self._refused = False  # the last POST was refused for its token: said once
        self.poll_interval_s = poll_interval_s
        self._last: bytes | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self, on_desired: DesiredHandler, on_method: MethodHandler) -> None:
        """Start polling (direct methods do not exist without a hub)."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(on_desired))

    async def _poll(self, on_desired: DesiredHandler) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                raw = await asyncio.to_thread(_read_source, self.source)
            except UnavailableError as exc:
                log.warning("%s", exc)
                continue
            if raw != self._last:
                with contextlib.suppress(InvalidArgumentError):
                    await on_desired(self._decode(raw))

    def _decode(self, raw: bytes) -> dict[str, Any]:
        self._last = raw
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidArgumentError(f"desired state at {self.source} is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"desired state at {self.source} must be a JSON object")
        return data

    async def get_desired(self) -> dict[str, Any]:
        """Read the desired-state document now."""
        return self._decode(await asyncio.to_thread(_read_source, self.source))

    async def report(self, patch: dict[str, Any]) -> None:
        """Write the reported state to ``reported.json`` (atomically)."""
        path = self.state_dir / "reported.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(patch, indent=1, default=str))
        os.replace(tmp, path)

    async def send(self, message: OutboxMessage) -> None:
        """POST one message to the collector; only a 2xx answer counts as delivered."""
        if self.telemetry_url is None:
            raise UnavailableError("no --telemetry-url: telemetry stays in the outbox")
        request = urllib.request.Request(
            f"{self.telemetry_url}/v1/devices", message.body, self._headers(), method="POST"
        )

        def post() -> None:
            with urllib.request.urlopen(request, timeout=15) as response:
                response.read()

        try:
            await asyncio.to_thread(post)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the answer's socket
            if exc.code in (401, 403):
                raise self._unauthorized(exc.code) from None
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                # The collector refuses this message for good: retrying would block the queue.
                log.error("collector rejected telemetry %s: HTTP %d", message.message_id, exc.code)
                return
            raise UnavailableError(f"telemetry POST failed: HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise UnavailableError(
                f"telemetry POST to {self.telemetry_url} failed: {exc}"
            ) from None
        if self._refused:
            log.warning("telemetry accepted by %s again", self.telemetry_url)
            self._refused = False

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._token_file is not None:
            # After a refusal the file is read on every retry: a rewrite within the same
            # mtime tick and size still counts.
            self._token = self._token_file.current(force=self._refused)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _unauthorized(self, code: int) -> UnavailableError:
        """A refused token keeps the telemetry queued: fixing the token delivers it."""
        if not self._token:
            why = "needs a token"
            hint = (
                "give a contributor token: --telemetry-token-file FILE or $AMLPKG_TELEMETRY_TOKEN"
            )
        elif code == 401:
            why = "refused the token (unknown, expired or revoked)"
            hint = (
                "write a new contributor token into the token file (it is re-read), or"
                " restart the agent with one"
            )
        else:
            why = "refused the token's role"
            hint = "sending telemetry needs a contributor (or admin) token, not a reader's"
        message = f"the collector at {self.telemetry_url} {why} (HTTP {code})"
        if not self._refused:  # once per outage, not once per retry
            log.error("%s; telemetry stays in the outbox. hint: %s", message, hint)
            self._refused = True
        return UnavailableError(f"{message}; telemetry stays in the outbox", hint=hint)

    async def close(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
