"""The web UI: the built single-page app under ``/ui/``, with a fallback to its index.

The bundle is built from ``server/ui`` (``make ui``) into ``static/`` and ships as
package data, so the UI works offline and a ``pip install`` needs no node. The
pages call the same ``/api/v1`` routes with the token the user gives them (kept in
``sessionStorage``, sent as a bearer header): no cookie, so no CSRF to defend.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
# Scripts and data only from this origin: a value that slipped into markup could not run.
# Styles may be set inline (the chart library positions its cursor with style attributes).
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'"
    " 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    """Hashed bundle files: cacheable for good, and under the same headers as the pages."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers.update({**HEADERS, "Cache-Control": "public, max-age=31536000"})
        return response


def _index() -> Response:
    index = STATIC / "index.html"
    if not index.is_file():
        return Response("the UI bundle is missing: run `make ui`", 404, media_type="text/plain")
    return FileResponse(index, headers=HEADERS, media_type="text/html")


def install(app: FastAPI) -> None:
    """Serve the UI at ``/ui/`` (kept out of the OpenAPI contract: it is not the API)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")

    @router.get(PREFIX)
    @router.get(PREFIX + "/{path:path}")
    def page(path: str = "") -> Response:
        # Every page path answers the index; the app routes in the browser.
        return _index()

    if (STATIC / "assets").is_dir():
        app.mount(f"{PREFIX}/assets", _Assets(directory=STATIC / "assets"), name="ui-assets")
    app.include_router(router)
