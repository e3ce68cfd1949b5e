"""`amlpkg score MODEL --input PATH --output PATH [--engine local|spark]`: batch scoring.

Parses options and delegates to :func:`amlpkg.batch.local.score_file` (this process,
pyarrow) or :func:`amlpkg.spark.files.score_on_spark` (a Spark master). Both come from
the optional ``amlpkg-batch`` distribution, imported only when the command runs.
Against a team server the model comes from the server and the lineage goes there
(:mod:`amlpkg.batch.sites`); the scoring runs here either way.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from amlpkg.cli.output import console, print_json
from amlpkg.cli.runs import HomeOption, JsonOption
from amlpkg.errors import FailedPreconditionError, InvalidArgumentError


class Engine(StrEnum):
    """Where the batches are scored."""

    local = "local"
    spark = "spark"


def _inputs(specs: list[str] | None) -> dict[str, list[str]] | list[str] | None:
    """``--input-columns a,b,c`` (the one input) or ``NAME=a,b,c`` (repeatable)."""
    if not specs:
        return None
    named = [s for s in specs if "=" in s]
    if named and len(named) != len(specs):
        raise InvalidArgumentError(
            "mix of NAME=COLUMNS and plain COLUMNS in --input-columns",
            hint="name every input (NAME=a,b) or give one plain list for a one-input model",
        )
    if not named:
        return [c for s in specs for c in s.split(",") if c]
    return {
        n: [c for c in cols.split(",") if c] for n, _, cols in (s.partition("=") for s in specs)
    }


def _outputs(specs: list[str] | None) -> dict[str, str] | None:
    """``--output-column label`` keeps an output; ``probabilities=p`` renames it too."""
    if not specs:
        return None
    return {name: (column or name) for name, _, column in (s.partition("=") for s in specs)}


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("score")
    def score_command(  # noqa: PLR0917 - Typer passes options positionally
        model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
        input_path: Annotated[
            str, typer.Option("--input", "-i", help="Parquet/CSV file or folder of parts.")
        ],
        output_path: Annotated[
            str,
            typer.Option("--output", "-o", help="Output file (.parquet/.csv); a folder on Spark."),
        ],
        engine: Annotated[Engine, typer.Option(help="local: this process; spark: a cluster.")] = (
            Engine.local
        ),
        spark_master: Annotated[
            str, typer.Option("--spark-master", help="spark://HOST:PORT or local[N].")
        ] = "local[*]",
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, help="Rows per ONNX Runtime call.")
        ] = 10_000,
        input_columns: Annotated[
            list[str] | None,
            typer.Option(
                "--input-columns",
                help="Columns feeding the model: a,b,c (one input) or NAME=a,b (repeatable).",
            ),
        ] = None,
        output_columns: Annotated[
            list[str] | None,
            typer.Option("--output-column", help="Outputs to append, OUTPUT or OUTPUT=COLUMN."),
        ] = None,
        keep: Annotated[
            list[str] | None,
            typer.Option("--keep", help="Input columns to pass through (default: all)."),
        ] = None,
        input_format: Annotated[
            str | None, typer.Option("--format", help="parquet or csv (default: by suffix).")
        ] = None,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Score a dataset with a registered model; lineage records which version scored it."""
        try:
            if engine is Engine.spark:
                from amlpkg.spark.files import score_on_spark
            else:
                from amlpkg.batch.local import score_file
        except ImportError as exc:
            extra = "amlpkg-batch[spark]" if engine is Engine.spark else "amlpkg-batch"
            raise FailedPreconditionError(
                f"batch scoring is not installed ({exc.name})", hint=f"pip install '{extra}'"
            ) from exc
        inputs, outputs = _inputs(input_columns), _outputs(output_columns)
        if engine is Engine.spark:
            result = score_on_spark(
                spark_master, model, input_path, output_path, inputs=inputs, outputs=outputs,
                keep=keep, batch_rows=batch_size, input_format=input_format, overwrite=overwrite,
                home=home,
            )  # fmt: skip
        else:
            result = score_file(
                model, input_path, output_path, inputs=inputs, outputs=outputs, keep=keep,
                batch_rows=batch_size, input_format=input_format, overwrite=overwrite, home=home,
            )  # fmt: skip
        if as_json:
            print_json(result.to_dict())
            return
        rate = result.rows / result.seconds if result.seconds > 0 else 0.0
        console.print(
            f"scored {result.rows} rows with {result.model} in {result.seconds:.1f} s"
            f" ({rate:,.0f} rows/s) -> {result.output}"
        )
