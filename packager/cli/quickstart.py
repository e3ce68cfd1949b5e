"""`amlpkg quickstart`: the main job end to end on the embedded workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from amlpkg.packager.cli.lineage import print_lineage
from amlpkg.packager.cli.output import console
from amlpkg.packager.cli.runs import HomeOption


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("quickstart")
    def quickstart_command(
        home: HomeOption = None,
        model_name: Annotated[
            str, typer.Option("--model-name", help="Registry name for the model.")
        ] = "iris-classifier",
    ) -> None:
        """Train, track, export (with parity check), register and show the lineage of a model."""
        from amlpkg.trainer.quickstart import run_quickstart

        def step(message: str) -> None:
            console.print(f"[green]✓[/] {message}")

        result = run_quickstart(home, model_name=model_name, on_step=step)
        console.print()
        print_lineage(result.lineage)
        ref = result.model_version.ref
        console.print(f"\nnext: [bold]amlpkg models show {ref}[/], [bold]amlpkg lineage {ref}[/]")
