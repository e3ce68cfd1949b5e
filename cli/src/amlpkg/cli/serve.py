"""`amlpkg serve --model-repository DIR | --model NAME:VERSION`: run the scoring server here.

The command only parses options and delegates to :func:`amlpkg.runtime.server.serve`
(the scoring image runs the same server with ``python -m amlpkg.runtime``). Options
given override ``AMLPKG_SERVER_*`` variables, which override the defaults.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Annotated, Any

import typer

from amlpkg.cli.output import console
from amlpkg.cli.runs import HomeOption
from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.repository import materialize
from amlpkg.trainer.remote.guard import require_embedded


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
        model: Annotated[
            list[str] | None,
            typer.Option(
                "--model",
                help="Workspace model to serve: NAME, NAME:VERSION or NAME@ALIAS (repeatable).",
            ),
        ] = None,
        home: HomeOption = None,
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
        require_signature: Annotated[
            bool | None,
            typer.Option(
                "--require-signature",
                help="Load only versions whose model.sig verifies against --trust.",
            ),
        ] = None,
        trust: Annotated[
            Path | None,
            typer.Option("--trust", help="Signer's PEM public key or PEM root chain."),
        ] = None,
    ) -> None:
        """Serve ONNX models over KServe v2 REST and gRPC until SIGTERM / Ctrl-C.

        The auth token comes from AMLPKG_SERVER_AUTH_TOKEN (never the command line).
        """
        if model_repository is not None and not model_repository.is_dir():
            raise InvalidArgumentError(
                f"model repository {model_repository} is not a directory",
                hint="pass a folder laid out as <repo>/<model>/<version>/model.onnx",
            )
        with ExitStack() as cleanup:
            if model:
                require_embedded("amlpkg serve --model", home)
                if model_repository is not None:
                    raise InvalidArgumentError(
                        "--model and --model-repository exclude each other",
                        hint="serve workspace models or a repository folder, not both",
                    )
                model_repository = Path(cleanup.enter_context(TemporaryDirectory(prefix="amlpkg-")))
                for version in materialize(model, model_repository, home=home):
                    console.print(f"serving {version.ref} (sha256 {version.sha256[:12]})")
            _serve(
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
                require_signature=require_signature,
                trust=trust,
            )


def _serve(**options: Any) -> None:
    """Load the settings (options given override AMLPKG_SERVER_*) and serve until stopped."""
    from amlpkg.runtime.server import serve
    from amlpkg.runtime.settings import load_settings

    serve(load_settings(**options))
