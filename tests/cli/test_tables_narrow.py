"""CLI tables in an 80-column log (non-tty stdout): long cells fold, none is cut with '…'."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from amlpkg.cli.app import app
from amlpkg.collector.store import TelemetryStore, row_from_device_message
from amlpkg.store.workspace import open_workspace
from tests.cli.rich_tables import assert_not_cut


def test_telemetry_table_folds_in_80_columns(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with open_workspace(home) as ws:
        TelemetryStore(ws).add(
            [
                row_from_device_message(
                    {
                        "message_id": "m1",
                        "device": "quickstart-edge-device-0001",
                        "model": "quickstart-iris",
                        "version": "12",
                        "deployment": "quickstart-deployment:3",
                        "requests": 1234,
                        "errors": 5,
                        "latency_avg_ms": 1.25,
                        "compute_p95_ms": 2.5,
                    }
                )
            ]
        )
    # CliRunner's stdout is not a terminal, as in a CI log.
    done = CliRunner().invoke(
        app, ["telemetry", "show", "--home", str(home)], env={"COLUMNS": "80"}
    )
    assert done.exit_code == 0, done.output
    assert max(len(line) for line in done.output.splitlines()) <= 80
    assert_not_cut(
        done.output,
        "quickstart-deployment:3",
        "quickstart-edge-device-0001",
        "quickstart-iris:12",
        "requests",
    )
