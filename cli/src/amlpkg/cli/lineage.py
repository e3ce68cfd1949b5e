"""`amlpkg lineage NAME:VERSION`: the run behind a model version and what came of it;
`amlpkg lineage device:ID`: what a device runs, because of which rollout stage or deploy."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.tree import Tree

from amlpkg.cli.output import console, print_json
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption, when
from amlpkg.trainer.remote.backend import open_backend


def print_lineage(chain: dict[str, Any]) -> None:
    """Print a :func:`amlpkg.trainer.lineage` result as a Rich tree."""
    version = chain["model_version"]
    tree = Tree(
        f"[bold]model {version['ref']}[/]"
        + (f" @{', @'.join(version['aliases'])}" if version["aliases"] else "")
        + f"  sha256 {version['sha256'][:12]}  opset {version['opset']}"
    )
    run = chain["run"]
    if run is None:
        tree.add("[yellow]no run recorded[/] (registered from a file without --run)")
    else:
        commit = run["git_commit"] or "not in git"
        dirty = " (dirty)" if run["git_dirty"] else ""
        node = tree.add(
            f"[bold]made by run {run['id']}[/] \\[{run['status']}] experiment"
            f" {run['experiment']}, started {when(run['start_time'])}"
        )
        node.add(f"code: {commit}{dirty}")
        node.add(f"command: {run['command'] or '-'}")
        params = node.add(f"params ({len(run['params'])})")
        for key, value in run["params"].items():
            params.add(f"{key} = {value}")
        metrics = node.add(f"final metrics ({len(run['metrics'])})")
        for key, value in run["metrics"].items():
            metrics.add(f"{key} = {value:.6g}")
    downstream = chain["downstream"]
    built = tree.add(f"built and deployed from it ({len(downstream)})")
    for edge in downstream:
        line = built.add(
            f"{edge['src_kind']} {edge['src_id']} --{edge['relation']}-->"
            f" {edge['dst_kind']} {edge['dst_id']}"
        )
        if edge.get("detail"):  # key facts of the row, where a stage adds them
            line.add(str(edge["detail"]))
    console.print(tree)


def print_device_lineage(view: dict[str, Any]) -> None:
    """Print a :func:`amlpkg.collector.lineage.device_lineage` result as a Rich tree."""
    device = view["device"]
    tree = Tree(
        f"device {device['id']}  desired {device['desired_model'] or '-'},"
        f" reports {device['reported_model'] or '-'}",
        highlight=False,
    )
    if view["because"]:
        tree.add(view["because"])
    if device.get("tags"):
        tree.add("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(device["tags"].items())))
    behind = tree.add(f"behind it ({len(view['upstream'])})")
    for edge in view["upstream"]:
        line = behind.add(
            f"{edge['src_kind']} {edge['src_id']} --{edge['relation']}-->"
            f" {edge['dst_kind']} {edge['dst_id']}"
        )
        if edge.get("detail"):
            line.add(str(edge["detail"]))
    console.print(tree, markup=False)


def _device_lineage(device_id: str, home: Any, tracking_uri: str | None, as_json: bool) -> None:
    from amlpkg.collector.lineage import device_lineage
    from amlpkg.errors import InvalidArgumentError
    from amlpkg.store.workspace import open_workspace

    if tracking_uri:
        raise InvalidArgumentError(
            "device lineage reads the workspace's own records",
            hint="run it where the workspace is (--home), without --tracking-uri",
        )
    with open_workspace(home) as ws:
        view = device_lineage(ws, device_id)
    if as_json:
        print_json(view)
    else:
        print_device_lineage(view)


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""

    @app.command("lineage")
    def lineage_command(
        ref: Annotated[
            str,
            typer.Argument(help="NAME:VERSION, NAME@ALIAS, NAME (latest) or device:ID."),
        ],
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Show the run, params, metrics and code behind a model version, and what it feeds;
        for device:ID, what the device runs and which rollout stage or deploy put it there."""
        if ref.startswith("device:"):
            _device_lineage(ref.removeprefix("device:"), home, tracking_uri, as_json)
            return
        with open_backend(home, tracking_uri) as backend:
            chain = backend.lineage(ref)
        if as_json:
            print_json(chain)
            return
        print_lineage(chain)
