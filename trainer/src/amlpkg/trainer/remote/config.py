"""Which tracking backend a call uses, and the credentials ``amlpkg login`` keeps.

Precedence, the settings rule applied to the server:

1. an explicit ``home=`` / ``--home`` (the embedded workspace there), or an explicit
   ``tracking_uri=`` / ``--tracking-uri`` (that server);
2. the environment: ``AMLPKG_TRACKING_URI`` (a server, token from
   ``AMLPKG_TRACKING_TOKEN`` or the credentials file), then ``AMLPKG_HOME`` /
   ``AMLPKG_STORE`` (the embedded workspace, so a test or a script that names its
   workspace is never sent to the server a user logged in to);
3. the credentials file written by ``amlpkg login``;
4. the default: the embedded workspace ``./.amlpkg``.

The credentials file lives in the user's config folder
(``$XDG_CONFIG_HOME/amlpkg/credentials.json``, else ``~/.config/...``), never in a
project, with mode 0600. Standard library only: the script API imports this.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from amlpkg.errors import InvalidArgumentError, UnauthenticatedError

TRACKING_URI_ENV = "AMLPKG_TRACKING_URI"
TRACKING_TOKEN_ENV = "AMLPKG_TRACKING_TOKEN"
EMBEDDED_ENVS = ("AMLPKG_HOME", "AMLPKG_STORE")


@dataclass(frozen=True)
class Server:
    """A team server and the token to reach it with."""

    url: str  # normalized: scheme://host[:port][/prefix], no trailing slash
    token: str

    def __repr__(self) -> str:  # a token never lands in a log or a traceback
        return f"Server(url={self.url!r}, token={mask(self.token)!r})"


def mask(token: str) -> str:
    """A token as it may be shown: ``amlpkg_<id>_****`` (the id alone identifies it)."""
    prefix, _, rest = token.partition("_")
    token_id, sep, _ = rest.partition("_")
    if prefix == "amlpkg" and sep:
        return f"amlpkg_{token_id}_****"
    return "****"


def normalize_url(url: str) -> str:
    """``url`` checked (http or https, a host, no credentials, query or fragment), no '/' at end."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(
            f"{text!r} is not a server URL",
            hint="use http(s)://HOST[:PORT], e.g. https://ml.example",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        # A token in a URL ends up in shell history and proxy logs: refuse the habit.
        raise InvalidArgumentError(
            "the server URL must not carry credentials, a query or a fragment",
            hint="give the token with --token or AMLPKG_TRACKING_TOKEN",
        )
    return text.rstrip("/")


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (plain http is acceptable there)."""
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def config_dir() -> Path:
    """The user's amlpkg config folder."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "amlpkg"


def cache_dir() -> Path:
    """The user's amlpkg cache folder (metric spools live here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "amlpkg"


def server_cache_dir(kind: str, server: Server) -> Path:
    """``<cache>/<kind>/<host-port>-<hash>``: one cache folder per team server, so rows or
    signatures fetched from one server never sit beside another's same-named ones."""
    where = re.sub(r"[^A-Za-z0-9.-]+", "_", server.url.split("://", 1)[-1])[:60]
    return cache_dir() / kind / f"{where}-{hashlib.sha256(server.url.encode()).hexdigest()[:8]}"


def credentials_path() -> Path:
    """Where ``amlpkg login`` keeps URL and token."""
    return config_dir() / "credentials.json"


def _read() -> dict[str, object]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(
            f"cannot read the credentials file {path}: {type(exc).__name__}",
            hint="log in again: amlpkg login URL",
        ) from None
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, object]) -> Path:
    """Replace the credentials file atomically; it is 0600 from its first byte."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def _tokens(data: dict[str, object]) -> dict[str, str]:
    servers = data.get("servers")
    return {str(k): str(v) for k, v in servers.items()} if isinstance(servers, dict) else {}


def save_login(server: Server) -> Path:
    """Keep ``server`` (URL and token) and make it the current server; return the file."""
    data = _read()
    tokens = _tokens(data)
    tokens[server.url] = server.token
    return _write({"current": server.url, "servers": tokens})


def forget_login(url: str | None = None) -> str | None:
    """Drop the token of ``url`` (default: the current server); return the URL dropped."""
    data = _read()
    tokens = _tokens(data)
    current = data.get("current")
    target = normalize_url(url) if url else (current if isinstance(current, str) else None)
    if target is None or target not in tokens:
        return None
    del tokens[target]
    _write({"current": None if current == target else current, "servers": tokens})
    return target


def logged_in() -> Server | None:
    """The server ``amlpkg login`` made current, or None."""
    data = _read()
    current = data.get("current")
    token = _tokens(data).get(current) if isinstance(current, str) else None
    return Server(str(current), token) if token else None


def server_for(url: str) -> Server:
    """``url`` with its token: ``AMLPKG_TRACKING_TOKEN``, else the one kept for that URL."""
    url = normalize_url(url)
    token = os.environ.get(TRACKING_TOKEN_ENV) or _tokens(_read()).get(url)
    if not token:
        raise UnauthenticatedError(
            f"no token for the tracking server {url}",
            hint=f"amlpkg login {url}, or set {TRACKING_TOKEN_ENV}",
        )
    return Server(url, token)


def tracking_server(
    home: str | Path | None = None, tracking_uri: str | None = None
) -> Server | None:
    """The server calls go to, or None for the embedded workspace (see the module's rules)."""
    if home is not None and tracking_uri is not None:
        raise InvalidArgumentError(
            "both a workspace folder and a tracking server were given", hint="choose one"
        )
    chosen = selected(home, tracking_uri)
    return server_for(chosen) if isinstance(chosen, str) else chosen


def selected(
    home: str | Path | None = None, tracking_uri: str | None = None
) -> str | Server | None:
    """The module's rules, without reading a token for a URL: None for the embedded
    workspace, the URL named (``tracking_uri``, else the environment), or the server
    ``amlpkg login`` made current."""
    if home is not None:
        return None
    if tracking_uri:
        return tracking_uri
    from_env = os.environ.get(TRACKING_URI_ENV)
    if from_env:
        return from_env
    if any(os.environ.get(name) for name in EMBEDDED_ENVS):
        return None
    return logged_in()
