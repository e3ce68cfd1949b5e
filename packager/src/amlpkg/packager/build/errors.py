"""Errors of image building, derived from the one error tree."""

from __future__ import annotations

from amlpkg.errors import FailedPreconditionError, InternalError, UnavailableError


class BuildError(InternalError):
    """A build step failed; the message carries the tail of that step's log."""

    code = "build_failed"


class DockerUnavailableError(UnavailableError):
    """No Docker engine answers (not installed, not started, or no permission)."""


class WheelhouseError(FailedPreconditionError):
    """The host-side wheelhouse could not be gathered (pip download/wheel failed)."""


def tail(text: str, lines: int = 25) -> str:
    """The last ``lines`` lines of ``text``, for error messages that point at the cause."""
    return "\n".join(text.strip().splitlines()[-lines:])
