"""`amlpkg quickstart`: the main job end to end on the embedded workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from amlpkg.cli.lineage import print_lineage
from amlpkg.cli.output import console
from amlpkg.cli.runs import HomeOption


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("quickstart")
    def quickstart_command(
        home: HomeOption = None,
        model_name: Annotated[
            str, typer.Option("--model-name", help="Registry name for the model.")
        ] = "iris-classifier",
        build: Annotated[
            bool,
            typer.Option(
                "--build/--no-build", help="Build the scoring image when a Docker engine answers."
            ),
        ] = True,
        deploy: Annotated[
            bool,
            typer.Option(
                "--deploy/--no-deploy", help="Deploy locally, score over HTTP and gRPC, collect."
            ),
        ] = True,
    ) -> None:
        """Train, track, export, register, optimize, build, deploy, score; show the lineage."""
        from amlpkg.cli.main_job import run_main_job
        from amlpkg.cli.telemetry import print_summaries

        def step(message: str) -> None:
            console.print(f"[green]✓[/] {message}")

        result = run_main_job(home, model_name=model_name, build=build, deploy=deploy, on_step=step)
        if result.telemetry:
            console.print()
            print_summaries(
                "telemetry per deployment (amlpkg telemetry show)",
                [s.to_dict() for s in result.telemetry],
            )
        console.print()
        print_lineage(result.lineage)
        ref = result.model_ref
        console.print(
            f"\nnext: [bold]amlpkg lineage {ref}[/], [bold]amlpkg serve --model {ref}[/],"
            f" [bold]amlpkg deploy {ref} --target local --name {ref.split(':')[0]}[/]"
        )
