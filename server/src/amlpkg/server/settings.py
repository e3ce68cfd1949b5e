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
from amlpkg.settings import WorkspaceSettings, load_settings
from amlpkg.store.workspace import DB_NAME

MiB = 1024 * 1024
STORE_HINT = (
    "use a folder or sqlite:///PATH (embedded), or --store postgresql+psycopg://USER:PASSWORD@HOST/DB"
    " with --artifacts s3://BUCKET/PREFIX for a team"
)


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
    """The local workspace folder for ``--store``: the folder a folder, ``file://`` or
    ``sqlite:///`` URL names; for a database server, ``AMLPKG_HOME`` (local caches only).

    A ``sqlite:///DIR/amlpkg.db`` URL names the database file inside the folder.
    """
    if store is None or _is_database_server(store):
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
            f"the store {parsed.scheme}:// is not supported", hint=STORE_HINT
        )
    return path.expanduser().resolve()


def _is_database_server(store: str) -> bool:
    return urlparse(store).scheme.split("+")[0] in ("postgresql", "postgres")


def workspace_settings(store: str | None, artifacts: str | None) -> WorkspaceSettings:
    """The workspace ``--store`` and ``--artifacts`` name (None: the environment's).

    A folder or SQLite store keeps artifacts in its own folder unless ``--artifacts``
    names a bucket; a PostgreSQL store takes its URL as is (``postgresql://`` means
    psycopg 3).
    """
    home = store_home(store)
    base = load_settings(home)
    update: dict[str, object] = {}
    if store is not None and _is_database_server(store):
        scheme, _, rest = store.partition("://")
        update["store"] = f"postgresql+psycopg://{rest}" if "+" not in scheme else store
    elif store is not None:
        update["store"] = None  # the folder's own SQLite file
    if artifacts is not None:
        parsed = urlparse(artifacts)
        if parsed.scheme == "s3":
            update["artifacts"] = artifacts
        elif parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path) if parsed.scheme == "file" else artifacts)
            if path.expanduser().resolve() != home / "artifacts":
                raise InvalidArgumentError(
                    "a local artifact store lives in the workspace folder",
                    hint=f"leave --artifacts out (it is {home / 'artifacts'}), or use s3://",
                )
            update["artifacts"] = None
        else:
            raise InvalidArgumentError(
                f"artifacts on {parsed.scheme}:// are not supported", hint=STORE_HINT
            )
    return base.model_copy(update=update)
