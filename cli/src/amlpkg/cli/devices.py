"""`amlpkg devices list|show`: what each device should serve, and what it reports."""

from __future__ import annotations

from typing import Annotated

import typer

from amlpkg.cli.output import console, new_table, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, when

devices_app = typer.Typer(no_args_is_help=True)


def _sync(in_sync: bool | None) -> str:
    return "-" if in_sync is None else ("yes" if in_sync else "no")


@devices_app.command("list")
def list_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Every device: desired and reported model, deployment, last telemetry."""
    from amlpkg.collector.devices import list_devices
    from amlpkg.store.workspace import open_workspace

    with open_workspace(home) as ws:
        rows = [d.to_dict() for d in list_devices(ws)]
    if as_json:
        print_json(rows)
        return
    table = new_table("device", "desired", "reported", "in sync", "deployment", "last telemetry")
    for row in rows:
        table.add_row(
            row["id"],
            row["desired_model"] or "-",
            row["reported_model"] or "-",
            _sync(row["in_sync"]),
            row["deployment_id"] or row["desired_deployment_id"] or "-",
            when(row["last_telemetry"]),
        )
    print_table(table)


@devices_app.command("show")
def show_command(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """One device's record."""
    from amlpkg.collector.devices import get
    from amlpkg.store.workspace import open_workspace

    with open_workspace(home) as ws:
        data = get(ws, device_id).to_dict()
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{data['id']}[/] module {data['module'] or '-'}", highlight=False)
    sha = f" (sha256 {data['desired_sha256']})" if data["desired_sha256"] else ""
    lines = [
        ("desired", f"{data['desired_model'] or '-'}{sha}"),
        ("  by", f"{data['desired_deployment_id'] or '-'} at {when(data['desired_set'])}"),
        ("reported", data["reported_model"] or "-"),
        ("in sync", _sync(data["in_sync"])),
        ("deployment", data["deployment_id"] or "-"),
        ("first seen", when(data["first_seen"])),
        ("last seen", when(data["last_seen"])),
        ("last telemetry", when(data["last_telemetry"])),
    ]
    for key, value in lines:
        console.print(f"  {key}: {value}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `devices` command group to the root app."""
    app.add_typer(devices_app, name="devices", help="Devices: desired and reported models.")
