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
    store: str | None = Field(
        default=None,
        description="Workspace database URL: postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        " for a team; unset, the SQLite file in ``home`` (the embedded default).",
    )
    artifacts: str | None = Field(
        default=None,
        description="Artifact store: s3://BUCKET/PREFIX for a team (endpoint from"
        " AMLPKG_S3_ENDPOINT_URL or AWS_ENDPOINT_URL, credentials as boto3 finds them);"
        " unset, the content-addressed folder in ``home``.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint for an S3-compatible server; unset, boto3's own"
        " (AWS_ENDPOINT_URL, then AWS).",
    )
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint as clients reach it, used only to sign the URLs of direct"
        " uploads, when the server's own (s3_endpoint_url) is internal, e.g."
        " http://seaweedfs:8333 inside a cluster; unset, the server's own.",
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


def load_settings(
    home: str | Path | None = None, *, store: str | None = None, artifacts: str | None = None
) -> WorkspaceSettings:
    """Settings with explicit arguments (if given) over the environment over the default."""
    settings = WorkspaceSettings()
    update: dict[str, object] = {}
    if home is not None:
        update["home"] = Path(home)
    if store is not None:
        update["store"] = store
    if artifacts is not None:
        update["artifacts"] = artifacts
    return settings.model_copy(update=update) if update else settings
