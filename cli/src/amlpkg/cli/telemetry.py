"""`amlpkg telemetry serve|show`: the central collector and its summaries."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from amlpkg.cli.output import console, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption, when
from amlpkg.trainer.remote.fleet import open_fleet
from amlpkg.trainer.remote.guard import configured_url

telemetry_app = typer.Typer(help="Collect and show telemetry from runtimes and edge devices.")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_summaries(title: str, rows: list[dict[str, Any]]) -> None:
    """One Rich table of :class:`amlpkg.collector.summary.Summary` rows (as dicts)."""
    table = Table(title=title)
    for column in ("", "models", "requests", "req/s", "errors", "avg ms", "p95 ms", "last seen"):
        table.add_column(column, justify="left" if column in ("", "models") else "right")
    for s in rows:
        table.add_row(
            s["key"],
            ", ".join(s["models"]) or "-",
            str(s["requests"]),
            _fmt(s["throughput_rps"]),
            f"{s['errors']} ({s['error_rate']:.1%})",
            _fmt(s["latency_avg_ms"], 3),
            _fmt(s["latency_p95_ms"], 3),
            when(s["last"]),
        )
    print_table(table)


@telemetry_app.command("show")
def show(  # noqa: PLR0917 - Typer maps parameters to CLI options
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="Only this deployment.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="Only this device.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only rows received since: 30s, 15m, 2h, 1d.")
    ] = None,
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Latency, throughput and errors per deployment and per device."""
    from amlpkg.collector.summary import parse_since, summarize
    from amlpkg.store.workspace import open_workspace

    start = parse_since(since)
    groups = []
    if device is None:
        groups.append(("deployment", deployment))
    if deployment is None:
        groups.append(("device", device))
    with open_fleet(home, tracking_uri) as remote:
        if remote is not None:
            results = {by: remote.summaries(by, key, start) for by, key in groups}
        else:
            with open_workspace(home) as ws:
                results = {
                    by: [s.to_dict() for s in summarize(ws, by=by, key=key, since=start)]
                    for by, key in groups
                }
    if as_json:
        print_json({f"{by}s": rows for by, rows in results.items()})
        return
    for by, rows in results.items():
        if rows:
            print_summaries(f"telemetry per {by}", rows)
        else:
            console.print(f"no telemetry per {by} yet")


@telemetry_app.command("serve")
def serve(
    *,
    host: Annotated[str, typer.Option(help="Address of the OTLP/HTTP receiver.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="OTLP/HTTP port (4318 is the OTLP default).")] = 4318,
    mqtt_host: Annotated[
        str | None, typer.Option(help="MQTT broker carrying device telemetry (off if unset).")
    ] = None,
    mqtt_port: Annotated[int, typer.Option(help="MQTT broker port.")] = 1883,
    mqtt_ca_file: Annotated[
        Path | None, typer.Option(help="CA file: connect to the broker with TLS.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Receive OTLP traces/metrics and device telemetry into the workspace until Ctrl-C.

    With a team server configured nothing starts here: the server receives telemetry
    itself, and the command says where to point runtimes and devices.
    """
    from amlpkg.trainer.remote.receivers import server_receivers

    url = configured_url(home)
    if url is not None:
        for line in server_receivers(url, mqtt_host):
            console.print(line, markup=False, highlight=False)
        return
    from amlpkg.collector.server import MqttOptions, running_collector
    from amlpkg.store.workspace import open_workspace

    mqtt = None if mqtt_host is None else MqttOptions(mqtt_host, mqtt_port, mqtt_ca_file)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with open_workspace(home) as ws, running_collector(ws, host=host, port=port, mqtt=mqtt) as c:
        console.print(f"telemetry collector: OTLP/HTTP on {c.url} (/v1/traces, /v1/metrics)")
        if mqtt is not None:
            console.print(f"bridging MQTT {mqtt.host}:{mqtt.port} devices/+/modules/+/messages")
        console.print(f"runtimes: set OTEL_EXPORTER_OTLP_ENDPOINT={c.url}", highlight=False)
        while not stop.wait(0.5):
            pass
    console.print("collector stopped")


def register(app: typer.Typer) -> None:
    """Add the `telemetry` command group to the root app."""
    app.add_typer(telemetry_app, name="telemetry")
