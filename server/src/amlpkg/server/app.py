"""The FastAPI app of the team server: ``create_app(home)``."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from amlpkg.collector.app import create_app as create_collector_app
from amlpkg.collector.store import TelemetryStore
from amlpkg.server import failures, ui, uploads
from amlpkg.server.deps import ServerState
from amlpkg.server.failures import ErrorBody, Redactor
from amlpkg.server.limits import BodyLimit
from amlpkg.server.pool import WorkspacePool
from amlpkg.server.routers import (
    access,
    artifacts,
    deployments,
    direct,
    edge,
    lineage,
    packager,
    registry,
    runs,
    scorings,
    signatures,
    telemetry,
    views,
)
from amlpkg.server.settings import ServerSettings
from amlpkg.store.workspace import open_workspace

UPLOADS = ".server-uploads"
_ERRORS = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Invalid input",
        401: "Missing, invalid, expired or revoked token",
        403: "The token's role does not allow this",
        404: "Not found",
        413: "Body too large",
    }.items()
}


def create_app(home: Path, settings: ServerSettings | None = None) -> FastAPI:
    """The server over the embedded workspace at ``home`` (created and migrated if needed)."""
    settings = settings or ServerSettings()
    home = home.expanduser().resolve()
    pool = WorkspacePool(home, settings.pool_size)
    upload_dir = home / UPLOADS
    redact = Redactor([(upload_dir, failures.UPLOADS_NAME), (home, "<workspace>"),
                       (Path(tempfile.gettempdir()), "<tmp>")])  # fmt: skip
    telemetry_ws = open_workspace(home)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        uploads.remove_stale(upload_dir)
        yield
        state.close()

    app = FastAPI(
        title="amlpkg team server",
        version="0.1.0",
        summary="Runs, models, lineage, deployments, devices and telemetry of a workspace.",
        lifespan=lifespan,
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    state = ServerState(pool, settings, redact, upload_dir, telemetry_ws)
    app.state.amlpkg = state
    failures.install(app, redact)
    app.include_router(access.health_router)
    for module in (runs, artifacts, direct, registry, lineage, packager, deployments,
                   telemetry, views, access, signatures, scorings, edge):  # fmt: skip
        app.include_router(module.router)
    collector = create_collector_app(TelemetryStore(telemetry_ws))
    app.include_router(telemetry.receiver_router(collector, settings.max_otlp_bytes))
    ui.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_json_bytes)
    _contract_without_422(app)
    return app


def _contract_without_422(app: FastAPI) -> None:
    """Invalid input answers 400 with an ``ErrorBody`` (see failures): say so in the schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for path in schema["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
