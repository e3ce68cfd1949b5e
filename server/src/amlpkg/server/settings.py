"""Server settings and the store URLs it accepts.

Precedence as everywhere: an explicit argument (``--store``) over the environment
(``AMLPKG_TEAM_*``, ``AMLPKG_HOME``) over the default (``./.amlpkg``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from amlpkg.errors import InvalidArgumentError
from amlpkg.settings import load_settings
from amlpkg.store.workspace import DB_NAME

MiB = 1024 * 1024
NEXT = "PostgreSQL (--store postgresql://...) and S3 (--artifacts s3://...) come next"


class ServerSettings(BaseSettings):
    """Limits of the team server; every request body is bounded before it is read."""

    model_config = SettingsConfigDict(env_prefix="AMLPKG_TEAM_", extra="ignore")

    max_json_bytes: int = Field(
        default=1 * MiB, gt=0, description="Largest JSON request body, in bytes."
    )
    max_artifact_bytes: int = Field(
        default=1024 * MiB, gt=0, description="Largest run artifact upload, in bytes."
    )
    max_model_bytes: int = Field(
        default=2048 * MiB, gt=0, description="Largest ONNX model upload, in bytes."
    )
    max_otlp_bytes: int = Field(
        default=16 * MiB, gt=0, description="Largest OTLP or device telemetry body, in bytes."
    )
    pool_size: int = Field(
        default=8, gt=0, description="Workspace connections kept open for request handlers."
    )


def store_home(store: str | None) -> Path:
    """The workspace folder ``--store`` names: a folder, ``file://`` or ``sqlite:///`` URL.

    A ``sqlite:///DIR/amlpkg.db`` URL names the database file inside the folder.
    Other schemes are refused with what comes next.
    """
    if store is None:
        return load_settings().home.expanduser().resolve()
    parsed = urlparse(store)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else store)
    elif parsed.scheme == "sqlite":
        # SQLAlchemy's form: sqlite:///relative/path.db, sqlite:////absolute/path.db
        rest = store[len("sqlite:///") :] if store.startswith("sqlite:///") else ""
        if not rest:
            raise InvalidArgumentError(
                f"invalid SQLite store URL {store!r}", hint="use sqlite:///PATH/amlpkg.db"
            )
        path = Path(unquote(rest))
        if path.suffix == ".db":
            if path.name != DB_NAME:
                raise InvalidArgumentError(
                    f"the embedded store's database is named {DB_NAME}, not {path.name}",
                    hint=f"use sqlite:///FOLDER/{DB_NAME} or just the folder",
                )
            path = path.parent
    else:
        raise InvalidArgumentError(
            f"the store {parsed.scheme}:// is not supported yet: today the server runs on the"
            " embedded store (a folder, or sqlite:///PATH)",
            hint=NEXT,
        )
    return path.expanduser().resolve()


def check_artifacts(artifacts: str | None, home: Path) -> None:
    """Refuse an artifact location other than the embedded store's own folder."""
    if artifacts is None:
        return
    parsed = urlparse(artifacts)
    if parsed.scheme not in ("", "file"):
        raise InvalidArgumentError(
            f"artifacts on {parsed.scheme}:// are not supported yet: the embedded store keeps"
            f" them in {home / 'artifacts'}",
            hint=NEXT,
        )
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else artifacts)
    if path.expanduser().resolve() != home / "artifacts":
        raise InvalidArgumentError(
            "the embedded store keeps artifacts in its own folder",
            hint=f"leave --artifacts out (it is {home / 'artifacts'}); {NEXT}",
        )
