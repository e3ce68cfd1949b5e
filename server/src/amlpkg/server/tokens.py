"""API tokens: made at random, shown once, kept as a sha256, with expiry and revocation.

A token reads ``amlpkg_<id>_<secret>``: the id names it in lists, the audit log
and ``revoke``; only the digest of the whole text is stored, so the database
never holds a usable token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError, NotFoundError, UnauthenticatedError
from amlpkg.server.roles import Role
from amlpkg.store.db import write_tx
from amlpkg.store.workspace import Workspace

PREFIX = "amlpkg_"
_TOKEN = re.compile(r"^amlpkg_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
_ID = re.compile(r"^[0-9a-f]{12}$")
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_COLUMNS = "id, name, role, created, created_by, expires, revoked"


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token besides its secret."""

    id: str
    name: str
    role: Role
    created: float
    created_by: str
    expires: float | None
    revoked: float | None

    def active(self, now: float) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked is None and (self.expires is None or self.expires > now)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (never the secret: it is not known)."""
        return {**asdict(self), "role": self.role.value}


def digest(token: str) -> str:
    """The sha256 hex digest of a token's text: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expiry(text: str | None, now: float | None = None) -> float | None:
    """``30d``, ``12h``, ``15m``, ``90s`` from now, or ``never`` (None)."""
    if text is None or text.strip().lower() in ("", "never", "none"):
        return None
    match = _DURATION.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise InvalidArgumentError(
            f"invalid token lifetime {text!r}", hint="use e.g. 30d, 12h, 15m or never"
        )
    return (time.time() if now is None else now) + int(match[1]) * _UNITS[match[2]]


def _info(row: Any) -> TokenInfo:
    values = dict(row)
    values["role"] = Role(values["role"])
    return TokenInfo(**values)


def create_token(
    ws: Workspace, *, role: Role, name: str, created_by: str, expires: float | None
) -> tuple[str, TokenInfo]:
    """Make a token; return ``(its text, its info)``. The text is not kept: show it once."""
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidArgumentError("a token name must be 1-100 printable characters")
    token_id = secrets.token_hex(6)
    text = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = time.time()
    if expires is not None and expires <= now:
        raise InvalidArgumentError("a token must expire in the future")
    with write_tx(ws.conn) as conn:
        conn.execute(
            "INSERT INTO server_tokens (id, name, role, token_sha256, created, created_by,"
            " expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_id, name, role.value, digest(text), now, created_by, expires),
        )
    return text, get_token(ws, token_id)


def get_token(ws: Workspace, token_id: str) -> TokenInfo:
    """The token with ``token_id``."""
    row = None
    if _ID.match(token_id):
        row = ws.conn.execute(
            f"SELECT {_COLUMNS} FROM server_tokens WHERE id = ?", (token_id,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"no token {token_id!r}", hint="list them: amlpkg server token list")
    return _info(row)


def list_tokens(ws: Workspace, *, include_inactive: bool = True) -> list[TokenInfo]:
    """Every token, newest first (optionally only those still usable)."""
    rows = ws.conn.execute(f"SELECT {_COLUMNS} FROM server_tokens ORDER BY created DESC")
    tokens = [_info(row) for row in rows.fetchall()]
    now = time.time()
    return [t for t in tokens if include_inactive or t.active(now)]


def revoke_token(ws: Workspace, token_id: str) -> TokenInfo:
    """Revoke a token for good; revoking it again changes nothing."""
    get_token(ws, token_id)
    with write_tx(ws.conn) as conn:
        conn.execute(
            "UPDATE server_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
            (time.time(), token_id),
        )
    return get_token(ws, token_id)


def authenticate(ws: Workspace, token: str) -> TokenInfo:
    """The info of an active token, or :class:`UnauthenticatedError` (never saying why)."""
    refused = UnauthenticatedError(
        "missing, invalid, expired or revoked API token",
        hint="send 'Authorization: Bearer <token>'; an owner makes one with"
        " `amlpkg server token create`",
    )
    if not _TOKEN.match(token):
        raise refused
    row = ws.conn.execute(
        f"SELECT {_COLUMNS} FROM server_tokens WHERE token_sha256 = ?", (digest(token),)
    ).fetchone()
    now = time.time()
    if row is None or not _info(row).active(now):
        raise refused
    return _info(row)
