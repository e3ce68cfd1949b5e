"""Run the team server with uvicorn (TLS through uvicorn's own options)."""

from __future__ import annotations

from pathlib import Path

from amlpkg.errors import InvalidArgumentError
from amlpkg.server.settings import ServerSettings


def serve(
    home: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    settings: ServerSettings | None = None,
) -> None:
    """Serve the workspace at ``home`` until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    from amlpkg.server.app import create_app

    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgumentError(
            "TLS needs both --tls-cert and --tls-key", hint="give both files, or neither"
        )
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise InvalidArgumentError(f"TLS file {path} does not exist")
    app = create_app(home, settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=None if tls_cert is None else str(tls_cert),
        ssl_keyfile=None if tls_key is None else str(tls_key),
        log_level="info",
        # Clients see one header less about what runs here.
        server_header=False,
        # Nothing the server answers depends on forwarded headers: never trust them.
        proxy_headers=False,
    )
