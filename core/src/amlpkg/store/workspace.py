"""A workspace: the database and the artifact store, chosen by URL.

The embedded default is one folder (``home``): the SQLite file ``amlpkg.db`` and
the content-addressed ``artifacts/`` folder, no server needed. A team points
``store`` at PostgreSQL and ``artifacts`` at an S3 bucket; ``home`` then only
holds local caches (verified copies of artifacts read back).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine

from amlpkg.errors import InvalidArgumentError
from amlpkg.settings import WorkspaceSettings, load_settings
from amlpkg.store.artifacts import Artifacts, ArtifactStore
from amlpkg.store.db import Database, open_database
from amlpkg.store.schema_upgrade import upgrade

DB_NAME = "amlpkg.db"


class Workspace:
    """An open workspace. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self, home: Path, db: Database, artifacts: Artifacts, settings: WorkspaceSettings
    ) -> None:
        self.home = home
        self.db = db
        self.artifacts = artifacts
        self.settings = settings

    @property
    def conn(self) -> Database:
        """The database (statements, and :func:`amlpkg.store.db.write_tx`)."""
        return self.db

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for Core statements."""
        return self.db.engine

    @property
    def embedded(self) -> bool:
        """Whether this is the single-user folder store (SQLite + local artifacts)."""
        return self.settings.store is None and self.settings.artifacts is None

    def child_env(self) -> dict[str, str]:
        """Environment variables that open this same workspace in a child process."""
        env = {"AMLPKG_HOME": str(self.home)}
        if self.settings.store is not None:
            env["AMLPKG_STORE"] = self.settings.store
        if self.settings.artifacts is not None:
            env["AMLPKG_ARTIFACTS"] = self.settings.artifacts
        if self.settings.s3_endpoint_url is not None:
            env["AMLPKG_S3_ENDPOINT_URL"] = self.settings.s3_endpoint_url
        if self.settings.s3_public_endpoint_url is not None:
            env["AMLPKG_S3_PUBLIC_ENDPOINT_URL"] = self.settings.s3_public_endpoint_url
        return env

    def close(self) -> None:
        """Release the database connections."""
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_artifacts(settings: WorkspaceSettings, home: Path) -> Artifacts:
    """The artifact store ``settings.artifacts`` names (the folder in ``home`` by default)."""
    url = settings.artifacts
    if url is None:
        return ArtifactStore(home / "artifacts")
    if url.startswith("s3://"):
        from amlpkg.store.s3 import S3ArtifactStore

        return S3ArtifactStore.from_url(
            url,
            cache=home / "cache" / "artifacts",
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    raise InvalidArgumentError(
        f"unsupported artifact store {url!r}",
        hint="use s3://BUCKET/PREFIX, or leave it unset for the folder in the workspace home",
    )


def open_workspace(
    home: str | Path | None = None,
    *,
    settings: WorkspaceSettings | None = None,
    store: str | None = None,
    artifacts: str | None = None,
) -> Workspace:
    """Open (creating and migrating if needed) the workspace.

    Arguments win over ``AMLPKG_HOME``/``AMLPKG_STORE``/``AMLPKG_ARTIFACTS``, which
    win over the defaults (``./.amlpkg``, its SQLite file and artifact folder).
    """
    settings = settings or load_settings(home, store=store, artifacts=artifacts)
    root = settings.home.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(
            f"workspace home {root} is a file, not a folder",
            hint="point --home or AMLPKG_HOME at a folder",
        )
    root.mkdir(parents=True, exist_ok=True)
    url = settings.store or f"sqlite:///{root / DB_NAME}"
    artifact_store = open_artifacts(settings, root)
    db = open_database(url, busy_timeout_s=settings.busy_timeout_s)
    try:
        upgrade(db)
    except BaseException:
        db.close()
        raise
    return Workspace(root, db, artifact_store, settings)
