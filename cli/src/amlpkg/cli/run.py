"""`amlpkg run [--experiment NAME] [--target TARGET] -- CMD ...`: a tracked run;
`amlpkg runs reproduce RUN`: that run's command again, on its target and image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from amlpkg.cli import runs
from amlpkg.cli.output import error_console
from amlpkg.cli.runs import HomeOption
from amlpkg.packager.targets import reproduce, resolve_target
from amlpkg.trainer.runner import RunResult, run_tracked


def _status(message: str) -> None:
    error_console.print(f"[dim]{message}[/]")


def _finish(result: RunResult) -> None:
    style = "green" if result.status == "completed" else "red"
    error_console.print(
        f"[{style}]run {result.run_id} {result.status}[/] (exit code {result.exit_code})"
    )
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command(
        "run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def run_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
        command: Annotated[
            list[str], typer.Argument(help="The command, after --: amlpkg run -- python train.py")
        ],
        experiment: Annotated[
            str | None, typer.Option("--experiment", "-e", help="Experiment name.")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Run name.")] = None,
        target: Annotated[
            str,
            typer.Option(
                "--target",
                help="local; docker (an image built from the run's Python and"
                " requirements.txt) or docker:IMAGE; ssh://USER@HOST[:PORT] (that image on a"
                " remote Docker engine, the run on a team server); spark://HOST:PORT"
                " (spark-submit).",
            ),
        ] = "local",
        requirements: Annotated[
            Path | None,
            typer.Option(
                "--requirements",
                help="Requirements of a docker target's image (default: ./requirements.txt).",
                dir_okay=False,
            ),
        ] = None,
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
            target=resolve_target(target, requirements=requirements, on_status=_status, home=home),
        )
        _finish(result)

    @runs.app.command("reproduce")
    def reproduce_command(
        run: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
        home: HomeOption = None,
    ) -> None:
        """Rerun a run's command in its working directory, on its target and in its image."""
        _finish(reproduce(run, home=home, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer))
