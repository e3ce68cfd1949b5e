"""`amlpkg serve --model-repository DIR`: run the KServe v2 scoring server here.

The command only parses options and delegates to :func:`amlpkg.runtime.server.serve`
(the scoring image runs the same server with ``python -m amlpkg.runtime``). Options
given override ``AMLPKG_SERVER_*`` variables, which override the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amlpkg.errors import InvalidArgumentError


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("serve")
    def serve_command(
        *,
        model_repository: Annotated[
            Path | None,
            typer.Option(
                "--model-repository",
                help="Triton-layout repository: <repo>/<model>/<version>/model.onnx.",
            ),
        ] = None,
        # --- lead: `--model NAME:VERSION` (serve a workspace model) goes here. It should
        # resolve the workspace model into a repository folder and pass it on as
        # model_repository below; the rest of this command stays as it is. ---
        http_port: Annotated[
            int | None, typer.Option("--http-port", help="REST port (default 8000).")
        ] = None,
        grpc_port: Annotated[
            int | None, typer.Option("--grpc-port", help="gRPC port (default 8001).")
        ] = None,
        metrics_port: Annotated[
            int | None, typer.Option("--metrics-port", help="Extra port serving only /metrics.")
        ] = None,
        host: Annotated[
            str | None, typer.Option("--host", help="Address to bind (default 0.0.0.0).")
        ] = None,
        max_request_size: Annotated[
            int | None, typer.Option("--max-request-size", help="Largest REST body in bytes.")
        ] = None,
        tls_certfile: Annotated[
            Path | None, typer.Option("--tls-certfile", help="PEM certificate: enables TLS.")
        ] = None,
        tls_keyfile: Annotated[
            Path | None, typer.Option("--tls-keyfile", help="PEM key of --tls-certfile.")
        ] = None,
        shutdown_timeout: Annotated[
            float | None,
            typer.Option("--shutdown-timeout", help="Seconds to drain requests on SIGTERM."),
        ] = None,
        log_level: Annotated[
            str | None, typer.Option("--log-level", help="Logging level (default info).")
        ] = None,
    ) -> None:
        """Serve ONNX models over KServe v2 REST and gRPC until SIGTERM / Ctrl-C.

        The auth token comes from AMLPKG_SERVER_AUTH_TOKEN (never the command line).
        """
        from amlpkg.runtime.server import serve
        from amlpkg.runtime.settings import load_settings

        if model_repository is not None and not model_repository.is_dir():
            raise InvalidArgumentError(
                f"model repository {model_repository} is not a directory",
                hint="pass a folder laid out as <repo>/<model>/<version>/model.onnx",
            )
        settings = load_settings(
            model_repository=model_repository,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            host=host,
            max_request_size=max_request_size,
            tls_certfile=tls_certfile,
            tls_keyfile=tls_keyfile,
            shutdown_timeout=shutdown_timeout,
            log_level=log_level,
        )
        serve(settings)
