"""Every error answers JSON from the error tree: ``{"error", "code", "hint"}`` and its status.

Messages are written for a local user and may name the workspace folder or a
temporary file; a remote client must not learn the server's paths, so they are
replaced by placeholders before leaving. Anything unexpected is logged here and
answered as a bare 500 without details.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from amlpkg.errors import AmlpkgError, UnavailableError

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str
    code: str
    hint: str | None = None


_CODES = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied",
          404: "not_found", 405: "method_not_allowed", 409: "already_exists",
          413: "payload_too_large", 415: "unsupported_media_type"}  # fmt: skip


UPLOADS_NAME = "<upload>"
_UPLOAD_FOLDER = re.compile(re.escape(UPLOADS_NAME) + r"/\.upload-[A-Za-z0-9_-]+/")


class Redactor:
    """Replaces the server's own folders in text with placeholders."""

    def __init__(self, replacements: list[tuple[Path, str]]) -> None:
        # Longest first, so a folder inside the workspace wins over the workspace.
        self._pairs = sorted(((str(p), name) for p, name in replacements), key=lambda x: -len(x[0]))

    def __call__(self, text: str | None) -> str | None:
        """``text`` without the server's paths."""
        if text is None:
            return None
        for path, name in self._pairs:
            text = text.replace(path, name)
        # An upload's own folder says nothing to its sender: keep the file name only.
        return _UPLOAD_FOLDER.sub("", text)


def _answer(status: int, error: str, code: str, hint: str | None, **headers: str) -> JSONResponse:
    body = ErrorBody(error=error, code=code, hint=hint).model_dump()
    return JSONResponse(body, status_code=status, headers=headers or None)


def install(app: FastAPI, redact: Redactor) -> None:
    """Register the handlers that turn every failure into an ``ErrorBody``."""

    async def amlpkg_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AmlpkgError)
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
        message = redact(exc.message) or ""
        return _answer(exc.http_status, message, exc.code, redact(exc.hint), **headers)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [_problem(e) for e in exc.errors()[:5]]
        return _answer(400, "invalid request: " + "; ".join(problems), "invalid_argument", None)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODES.get(exc.status_code, "invalid_argument")
        return _answer(exc.status_code, str(exc.detail), code, None, **(exc.headers or {}))

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # Operational errors (SQLite locked past the busy timeout, PostgreSQL unreachable or
        # restarting) are worth a retry. Log the driver's message only: the statement's
        # parameters may hold token hashes or user data.
        reason = getattr(exc, "orig", None) or type(exc).__name__
        log.warning("%s %s: database error: %s", request.method, request.url.path, reason)
        if isinstance(exc, sa_exc.DataError):
            # A value the database cannot store (PostgreSQL text cannot hold a NUL
            # character; a number out of a column's range): the caller's to fix.
            return _answer(
                400,
                "a value in the request cannot be stored",
                "invalid_argument",
                "remove NUL characters from names, keys and values, and keep numbers in range",
            )
        busy = isinstance(exc, sa_exc.OperationalError)
        if busy:
            error = UnavailableError("the workspace database is busy", hint="retry shortly")
            return _answer(503, error.message, error.code, error.hint)
        return _answer(500, "internal error in the workspace store", "internal", None)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _answer(500, "internal server error", "internal", "see the server's log")

    app.add_exception_handler(AmlpkgError, amlpkg_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sa_exc.SQLAlchemyError, database_error)
    app.add_exception_handler(Exception, unexpected)


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"
