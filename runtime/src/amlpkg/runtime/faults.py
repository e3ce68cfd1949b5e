"""One mapping from any exception to what a client is told, for HTTP and gRPC alike.

An :class:`~amlpkg.errors.AmlpkgError` below 500 (or 503, retry later) is the caller's
to fix: its message goes out, with server paths replaced by placeholders. Anything else
is a server bug: it is logged with a trace id and the client gets only that id.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from amlpkg.errors import AmlpkgError
from amlpkg.runtime.errors import grpc_code_name

log = logging.getLogger("amlpkg.runtime.faults")


@dataclass(frozen=True, slots=True)
class PublicError:
    """What one failure looks like from outside."""

    http_status: int
    grpc_code: str
    message: str


class Redactor:
    """Replaces the server's own folders in messages by placeholders.

    Error bodies go to any caller; where the repository or the temp folder lives is
    nothing a caller needs, and it helps an attacker.
    """

    def __init__(self, folders: Iterable[tuple[Path | str, str]] = ()) -> None:
        pairs: dict[str, str] = {}
        for folder, label in [*folders, (tempfile.gettempdir(), "<tmp>")]:
            for form in {str(folder), os.path.realpath(folder)}:
                if len(form) > 1:
                    pairs[form.rstrip("/")] = label
        # Longest first, so a folder inside another is replaced by its own label.
        self._pairs = sorted(pairs.items(), key=lambda kv: -len(kv[0]))

    def add(self, folder: Path | str, label: str) -> None:
        """Redact one more folder (e.g. an override folder made later)."""
        self._pairs = Redactor([*self._pairs, (folder, label)])._pairs

    def __call__(self, text: str) -> str:
        """``text`` with every known folder replaced by its label."""
        for folder, label in self._pairs:
            if folder in text:
                text = text.replace(folder, label)
        return text


def public_error(exc: BaseException, redact: Redactor | None = None) -> PublicError:
    """The status codes and message a client gets for ``exc``."""
    if isinstance(exc, AmlpkgError) and (exc.http_status < 500 or exc.http_status == 503):
        message = str(exc)
        return PublicError(
            exc.http_status, grpc_code_name(exc), redact(message) if redact else message
        )
    trace_id = uuid.uuid4().hex[:16]
    log.error("internal error (trace id %s)", trace_id, exc_info=exc)
    return PublicError(
        500,
        "INTERNAL",
        f"internal server error (trace id {trace_id}); the server log has the details",
    )
