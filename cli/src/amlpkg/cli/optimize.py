"""`amlpkg optimize NAME:VERSION`: make, measure and register optimized variants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from amlpkg.cli.output import console, error_console, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption
from amlpkg.trainer.remote.config import tracking_server


def _speed_cells(variant: dict[str, Any]) -> tuple[str, str, str]:
    measured = variant["measurements"]
    batches = measured.get("batches")
    if not batches:
        return "not measured", "-", "-"
    first, last = next(iter(batches)), list(batches)[-1]
    return (
        f"{batches[first]['p50_ms']:.3f} ms @{first}",
        f"{batches[last]['throughput_per_s']:.0f}/s @{last}",
        f"{measured['speedup']:.2f}x",
    )


def print_report(report: dict[str, Any]) -> None:
    """Print an :class:`OptimizeReport` dict as a table and the decisions."""
    table = Table(title=f"variants of {report['model']} for {report['target']}")
    for column in ("variant", "size", "p50", "throughput", "speed", "max abs err", "verdict"):
        table.add_column(column, no_wrap=column != "verdict")
    baseline = report["baseline"]
    if baseline:
        p50, rate, _ = _speed_cells({"measurements": {**baseline, "speedup": 1.0}})
        table.add_row("original", "-", p50, rate, "1.00x", "0", "reference", style="dim")
    for v in report["variants"]:
        p50, rate, speed = _speed_cells(v)
        error = v["accuracy"].get("max_abs_error")
        state = "[green]accepted[/]" if v["accepted"] else "[red]refused[/]"
        verdict = "[bold green]chosen[/]" if v["chosen"] else f"{state}: {v['reason']}"
        table.add_row(
            f"{v['kind']} {v['precision']}",
            f"{v['size'] / 1024:.1f} KiB",
            p50,
            rate,
            speed,
            "-" if error is None else f"{error:.3g}",
            verdict,
        )
    for skipped in report["skipped"]:
        table.add_row(
            f"{skipped['kind']} {skipped['precision']}", "-", "-", "-", "-", "-",
            f"[yellow]not made[/]: {skipped['reason']}",
        )  # fmt: skip
    print_table(table)
    if report["synthetic_validation"]:
        console.print(
            "[yellow]accuracy was checked on SYNTHETIC inputs[/] made from the signature"
            " (no --validation file): pass real samples to trust it"
        )
    else:
        console.print(f"accuracy checked on {report['validation']}")
    if report["calibration"]:
        same = report["calibration"] == report["validation"]
        console.print(
            f"int8 static calibration sample: {report['calibration']}"
            + (
                " (the validation sample too: pass --calibration for an unbiased check)"
                if same
                else ""
            )
        )
    if report["measure_note"]:
        console.print(f"[yellow]{report['measure_note']}[/]")
    if report["choice"]:
        style = "bold green" if report["chosen"] else "yellow"
        console.print(f"[{style}]--auto:[/] {report['choice']}")
        if report["chosen"]:
            console.print(f"chosen variant: {report['chosen']}")
    for variant_id in report.get("signatures", {}):
        console.print(f"[green]signed[/] {variant_id}")


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("optimize")
    def optimize_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
        ref: Annotated[str, typer.Argument(help="NAME:VERSION, NAME@ALIAS or NAME (latest).")],
        target: Annotated[
            str, typer.Option(help="Where it will run: cpu, cuda, tensorrt or openvino.")
        ] = "cpu",
        precision: Annotated[
            str | None, typer.Option(help="Only variants of this precision: fp32, fp16, int8.")
        ] = None,
        auto: Annotated[
            bool, typer.Option("--auto", help="Choose the best accepted variant and record why.")
        ] = False,
        calibration: Annotated[
            Path | None,
            typer.Option(help=".npz calibration sample for static int8 (arrays named as inputs)."),
        ] = None,
        validation: Annotated[
            Path | None,
            typer.Option(help=".npz validation sample (arrays named as inputs, labels in 'y')."),
        ] = None,
        max_abs_error: Annotated[
            float | None,
            typer.Option(help="Largest allowed absolute output error (default per precision)."),
        ] = None,
        max_slowdown: Annotated[
            float, typer.Option(help="Largest allowed variant/original p50 latency ratio.")
        ] = 1.05,
        max_accuracy_drop: Annotated[
            float, typer.Option(help="Largest allowed drop of label agreement or accuracy.")
        ] = 0.01,
        sign_key: Annotated[
            Path | None,
            typer.Option(
                "--sign-key",
                help="Sign each accepted variant with this PEM EC key (or $AMLPKG_SIGNING_KEY).",
            ),
        ] = None,
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Make optimized variants of a model version, measure them here, register them.

        With a team server the model is downloaded, optimized and measured on this
        machine, and the variants are recorded on the server.
        """
        from amlpkg.errors import FailedPreconditionError
        from amlpkg.packager.optimize import Limits, OptimizeOptions, optimize
        from amlpkg.packager.optimize.remote import optimize_on_server
        from amlpkg.trainer.signing import configured_key

        server = tracking_server(home, tracking_uri)
        key = sign_key or configured_key()
        if key is not None and server is not None:
            raise FailedPreconditionError(
                "signing optimized variants needs the embedded workspace for now",
                hint="optimize without --sign-key (and $AMLPKG_SIGNING_KEY unset) on a server",
            )
        options = OptimizeOptions(
            target=target,
            precision=precision,
            auto=auto,
            validation=validation,
            calibration=calibration,
            limits=Limits(
                max_abs_error=max_abs_error,
                max_slowdown=max_slowdown,
                max_accuracy_drop=max_accuracy_drop,
            ),
        )
        with error_console.status("optimizing") as status:
            if server is None:
                report = optimize(ref, options, home=home, sign_key=key, on_step=status.update)
            else:
                report = optimize_on_server(server, ref, options, on_step=status.update)
        if as_json:
            print_json(report.to_dict())
            return
        print_report(report.to_dict())
