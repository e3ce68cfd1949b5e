"""Root of the ``amlpkg`` command line."""

from __future__ import annotations

import sys

import typer

from amlpkg.cli import (
    build,
    deploy,
    devices,
    lineage,
    login,
    models,
    oci,
    optimize,
    quickstart,
    rollout,
    run,
    runs,
    score,
    serve,
    server,
    sign,
    telemetry,
    ui,
    workspace,
)
from amlpkg.cli.output import error_console
from amlpkg.errors import AmlpkgError

app = typer.Typer(
    name="amlpkg",
    help="From a tracked training run to fast ONNX scoring endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run.register(app)
quickstart.register(app)
lineage.register(app)
serve.register(app)
optimize.register(app)
build.register(app)
deploy.register(app)
telemetry.register(app)
server.register(app)
devices.register(app)
ui.register(app)
rollout.register(app)
oci.register(app)
score.register(app)
login.register(app)
workspace.register(app)
app.add_typer(runs.app, name="runs", help="List, show and compare tracked runs.")
sign.register(models.app)
app.add_typer(models.app, name="models", help="The model registry.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``amlpkg`` console script."""
    try:
        app(args=argv, standalone_mode=True)
    except AmlpkgError as exc:
        error_console.print(f"[bold red]error:[/] {exc.message}")
        if exc.hint:
            error_console.print(f"[yellow]hint:[/] {exc.hint}")
        sys.exit(2)
