"""The one credential check of both transports: a bearer token or an API key.

HTTP passes its raw header bytes and gRPC its metadata strings; both compare in
constant time against the server's token and name what to send when it is wrong.
"""

from __future__ import annotations

import hmac

from amlpkg.runtime.errors import UnauthenticatedError


def _text(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else value.encode("latin-1", "replace")


def check_credentials(
    authorization: bytes | str | None, api_key: bytes | str | None, token: bytes, *, where: str
) -> None:
    """Accept ``Bearer <token>`` or an API key equal to ``token``; else raise 401."""
    auth = _text(authorization) or b""
    if auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), token):
        return
    key = _text(api_key)
    if key is not None and hmac.compare_digest(key, token):
        return
    raise UnauthenticatedError(
        "missing or wrong credentials",
        hint=f"send {where} 'authorization: Bearer <token>' or 'x-api-key: <token>'",
    )
