"""Commands that work only on an embedded workspace refuse when a team server is configured.

A user who set ``AMLPKG_TRACKING_URI`` or ran ``amlpkg login`` expects every command
to work against that server; a command that cannot yet must say so rather than
read or write ``./.amlpkg`` behind the user's back. The rules are those of
:mod:`amlpkg.trainer.remote.config` (``--home`` and ``AMLPKG_HOME`` / ``AMLPKG_STORE``
name a workspace explicitly), but no token is needed to be refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from amlpkg.errors import FailedPreconditionError
from amlpkg.trainer.remote.config import (
    TRACKING_URI_ENV,
    normalize_url,
    selected,
)

if TYPE_CHECKING:
    from amlpkg.store.workspace import Workspace


def configured_url(home: str | Path | None = None, tracking_uri: str | None = None) -> str | None:
    """The team server the settings select, or None for the embedded workspace (no token read)."""
    chosen = selected(home, tracking_uri)
    if isinstance(chosen, str):
        return normalize_url(chosen)
    return None if chosen is None else chosen.url


def require_embedded(
    command: str, home: str | Path | None = None, tracking_uri: str | None = None
) -> None:
    """Raise unless ``command`` would use the embedded workspace.

    ``command`` is what the user typed, e.g. ``amlpkg build``.
    """
    url = configured_url(home, tracking_uri)
    if url is None:
        return
    raise FailedPreconditionError(
        f"`{command}` does not work against a team server yet, and a team server ({url})"
        " is configured",
        hint="pass --home DIR to use a local workspace explicitly (or set AMLPKG_HOME), or"
        f" unset {TRACKING_URI_ENV} / run `amlpkg logout`",
    )


@contextmanager
def open_embedded(command: str, home: str | Path | None = None) -> Iterator[Workspace]:
    """The embedded workspace ``command`` works on (see :func:`require_embedded`), open."""
    from amlpkg.store.workspace import open_workspace  # the database only once allowed

    require_embedded(command, home)
    with open_workspace(home) as ws:
        yield ws
