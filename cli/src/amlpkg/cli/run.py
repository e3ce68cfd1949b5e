"""`amlpkg run [--experiment NAME] -- CMD ...`: run a command as a tracked run."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from amlpkg.cli.output import error_console
from amlpkg.cli.runs import HomeOption
from amlpkg.trainer.runner import run_tracked


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command(
        "run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def run_command(
        command: Annotated[
            list[str], typer.Argument(help="The command, after --: amlpkg run -- python train.py")
        ],
        experiment: Annotated[
            str | None, typer.Option("--experiment", "-e", help="Experiment name.")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Run name.")] = None,
        home: HomeOption = None,
    ) -> None:
        """Run a command as a tracked run; exit with the command's exit code."""
        result = run_tracked(
            command,
            experiment=experiment,
            name=name,
            home=home,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr.buffer,
        )
        style = "green" if result.status == "completed" else "red"
        error_console.print(
            f"[{style}]run {result.run_id} {result.status}[/] (exit code {result.exit_code})"
        )
        raise typer.Exit(result.exit_code)
