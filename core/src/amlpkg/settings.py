"""Workspace settings.

Precedence, the one rule every command and API follows:

1. an explicit argument (``home=...`` in Python, ``--home`` on the CLI);
2. the environment (``AMLPKG_HOME``, ``AMLPKG_BUSY_TIMEOUT_S``, ...);
3. the default (``./.amlpkg`` in the current directory).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkspaceSettings(BaseSettings):
    """Where the embedded workspace lives and how it is opened."""

    model_config = SettingsConfigDict(env_prefix="AMLPKG_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.cwd() / ".amlpkg",
        description="Folder holding the SQLite database and the artifact store.",
    )
    busy_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a writer waits for another process's write lock, in seconds.",
    )
    snapshot_max_bytes: int = Field(
        default=20 * 1024 * 1024,
        gt=0,
        description="Cap on the code snapshot tarball taken when the project is not in git.",
    )


def load_settings(home: str | Path | None = None) -> WorkspaceSettings:
    """Settings with an explicit ``home`` (if given) over the environment over the default."""
    settings = WorkspaceSettings()
    if home is not None:
        settings = settings.model_copy(update={"home": Path(home)})
    return settings
