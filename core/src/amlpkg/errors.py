"""The one error tree of amlpkg.

Every error raised on purpose derives from :class:`AmlpkgError`. Its message says
what went wrong and, where there is one, ``hint`` says what to do about it. Each
class carries the HTTP status it maps to; transports map that status to their own
codes (the runtime maps it to gRPC codes) in one table. Third-party exceptions
(onnxruntime, sqlite3, docker, ...) are wrapped into these at the boundary.

This module imports nothing but the standard library: every role uses it.
"""

from __future__ import annotations

from typing import ClassVar


class AmlpkgError(Exception):
    """Base class of every error amlpkg raises on purpose."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InvalidArgumentError(AmlpkgError):
    """The caller sent something malformed or inconsistent; fix the input."""

    code = "invalid_argument"
    http_status = 400


class NotFoundError(AmlpkgError):
    """A named thing (run, model, version, alias, artifact) does not exist."""

    code = "not_found"
    http_status = 404


class AlreadyExistsError(AmlpkgError):
    """The thing to create exists already."""

    code = "already_exists"
    http_status = 409


class FailedPreconditionError(AmlpkgError):
    """The system is not in a state where the call can run (e.g. model not ready)."""

    code = "failed_precondition"
    http_status = 400


class PayloadTooLargeError(AmlpkgError):
    """A request body is over the configured limit."""

    code = "payload_too_large"
    http_status = 413


class UnavailableError(AmlpkgError):
    """Temporarily unable to serve (queue full, shutting down); retry later."""

    code = "unavailable"
    http_status = 503


class UnauthenticatedError(AmlpkgError):
    """Missing or wrong credentials."""

    code = "unauthenticated"
    http_status = 401


class IntegrityError(AmlpkgError):
    """Stored data does not match its digest or is otherwise corrupt."""

    code = "data_loss"
    http_status = 500


class InternalError(AmlpkgError):
    """A failure inside amlpkg or a library it wraps; the message says which."""

    code = "internal"
    http_status = 500
