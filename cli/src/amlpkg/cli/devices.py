"""`amlpkg devices list|show|tag`: what each device should serve, what it reports, its tags."""

from __future__ import annotations

from typing import Annotated

import typer

from amlpkg.cli.output import console, new_table, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption, when
from amlpkg.trainer.remote.fleet import open_fleet

devices_app = typer.Typer(no_args_is_help=True)


def _sync(in_sync: bool | None) -> str:
    return "-" if in_sync is None else ("yes" if in_sync else "no")


@devices_app.command("list")
def list_command(
    home: HomeOption = None, tracking_uri: TrackingUriOption = None, as_json: JsonOption = False
) -> None:
    """Every device: desired and reported model, deployment, last telemetry."""
    from amlpkg.collector.devices import list_devices
    from amlpkg.store.workspace import open_workspace

    with open_fleet(home, tracking_uri) as remote:
        if remote is not None:
            rows = remote.list_devices()
        else:
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
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """One device's record."""
    from amlpkg.collector.devices import get
    from amlpkg.store.workspace import open_workspace

    with open_fleet(home, tracking_uri) as remote:
        if remote is not None:
            data = remote.get_device(device_id)
        else:
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
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(data["tags"].items())) or "-"),
    ]
    for key, value in lines:
        console.print(f"  {key}: {value}", markup=False, highlight=False)


@devices_app.command("tag")
def tag_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    tags: Annotated[
        list[str] | None, typer.Argument(help="NAME=VALUE to set (nested: site.line=3).")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="Tag NAME to remove (repeatable).")
    ] = None,
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set or remove a device's tags (as IoT Hub twin tags; rollouts select on tags.NAME)."""
    from amlpkg.cli.models import parse_tags
    from amlpkg.collector.devices import set_tags
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.remote.edge_records import tag_device

    patch: dict[str, str | None] = {**parse_tags(tags or []), **dict.fromkeys(remove or [])}
    with open_fleet(home, tracking_uri) as remote:
        if remote is not None:
            device = tag_device(remote.client, device_id, patch)
        else:
            with open_workspace(home) as ws:
                device = set_tags(ws, device_id, patch).to_dict()
    if as_json:
        print_json(device)
        return
    text = ", ".join(f"{k}={v}" for k, v in sorted(device["tags"].items())) or "-"
    console.print(f"{device['id']}: tags {text}", markup=False, highlight=False)


@devices_app.command("import-tags")
def import_tags_command(
    home: HomeOption = None, tracking_uri: TrackingUriOption = None, as_json: JsonOption = False
) -> None:
    """Copy the IoT Hub twins' tags into the device records (AMLPKG_IOTHUB_CONNECTION_STRING)."""
    from amlpkg.packager.rollout.twins import import_twin_tags, registry_from_env, twin_tag_pages
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.remote.edge_records import import_tags

    with open_fleet(home, tracking_uri) as remote:
        hub = registry_from_env()
        if remote is not None:
            done = import_tags(remote.client, twin_tag_pages(hub))
        else:
            with open_workspace(home) as ws:
                found = import_twin_tags(ws, hub)
            done = {"imported": found.imported, "refused": found.refused}
    if as_json:
        print_json(done)
        return
    console.print(f"tags of {len(done['imported'])} devices imported", highlight=False)
    for device_id, why in sorted(done["refused"].items()):
        console.print(f"  {device_id}: not imported: {why}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `devices` command group to the root app."""
    app.add_typer(devices_app, name="devices", help="Devices: desired and reported models.")
