"""`amlpkg rollout create|status|list|pause|resume|abort`: staged, gated fleet rollouts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from amlpkg.cli.output import console, new_table, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, when
from amlpkg.trainer.remote.guard import open_embedded

rollout_app = typer.Typer(no_args_is_help=True)

PollOption = Annotated[float, typer.Option(help="Seconds between the driver's gate checks.")]
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Only record or change it; do not drive it here.")
]


def status_lines(rollout: Any, devices: list[Any]) -> list[str]:
    """The human summary of a rollout: position, stages decided, devices per stage."""
    stages = ",".join(f"{s:g}%" for s in rollout.stages)
    lines = [
        f"rollout {rollout.id}: {rollout.model} to fleet {rollout.fleet!r} ({rollout.target})",
        f"  state {rollout.state}, stage {rollout.stage + 1}/{len(rollout.stages)} ({stages}),"
        f" phase {rollout.phase}",
        f"  gate {rollout.gate}; soak {rollout.soak_s:g}s; quorum {rollout.quorum:g}",
    ]
    for verdict in rollout.result:
        cohort, control = verdict.get("cohort") or {}, verdict.get("control") or {}
        verdict_text = "passed" if verdict.get("passed") else "FAILED"
        quorum = verdict["quorum"]
        lines.append(
            f"  stage {verdict['stage']} ({verdict['percent']:g}%): {verdict_text};"
            f" heard {quorum['heard']}/{quorum['of']}; cohort p95 {cohort.get('p95_ms')} ms,"
            f" errors {_rate(cohort.get('error_rate'))}; control p95 {control.get('p95_ms')} ms,"
            f" errors {_rate(control.get('error_rate'))}"
            + (f"; drift {_drift(cohort['drift'])}" if "drift" in cohort else "")
        )
    by_stage: dict[tuple[int, str], int] = {}
    for device in devices:
        key = (device.stage, device.status)
        by_stage[key] = by_stage.get(key, 0) + 1
    for (stage, status), count in sorted(by_stage.items()):
        lines.append(f"  stage {stage + 1}: {count} devices {status.replace('_', ' ')}")
    if rollout.reason:
        lines.append(f"  reason: {rollout.reason}")
    return lines


def _drift(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _drive(home: Path | None, rollout_id: str, poll: float) -> None:
    from amlpkg.packager import rollout as ro
    from amlpkg.store.workspace import open_workspace

    def show(r: Any) -> None:
        console.print(f"{r.id}: {r.state}, stage {r.stage + 1}/{len(r.stages)}, {r.phase}")

    with open_workspace(home) as ws:
        final = ro.drive(
            ws, rollout_id, ro.applier_for(ro.records.get(ws, rollout_id)), poll_s=poll,
            on_change=show,
        )  # fmt: skip
        for line in status_lines(final, ro.records.devices(ws, rollout_id)):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    if final.state == "failed":
        raise typer.Exit(1)


@rollout_app.command("create")
def create_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
    model: Annotated[str, typer.Argument(help="NAME:VERSION to roll out.")],
    fleet: Annotated[
        str,
        typer.Option(
            help="Devices: FIELD=GLOB[,..] over id, module,"
            " deployment, model, desired, tags.NAME; '*' for all."
        ),
    ],
    stages: Annotated[str, typer.Option(help="Cumulative shares, ending at 100%.")] = "5%,25%,100%",
    gate: Annotated[
        str,
        typer.Option(help="Checks on the cohort's telemetry: p50_ms..avg_ms, error_rate, drift."),
    ] = ("p95_ms<=1.2*control,error_rate<0.01"),
    soak: Annotated[str, typer.Option(help="Time per stage before its gate (30s, 10m).")] = "10m",
    quorum: Annotated[float, typer.Option(help="Share of a stage's devices to hear from.")] = 0.8,
    max_wait: Annotated[
        str | None, typer.Option(help="How long past the soak to wait for a quorum.")
    ] = None,
    target: Annotated[str, typer.Option(help="standalone or iotedge.")] = "standalone",
    desired_dir: Annotated[
        Path | None, typer.Option(help="standalone: folder of per-device desired documents.")
    ] = None,
    model_url: Annotated[
        str | None, typer.Option(help="Where devices download it (default: the stored file).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="iotedge: scoring image.")] = None,
    agent_image: Annotated[
        str | None,
        typer.Option(help="iotedge: agent image, pinned by digest (default: newest built)."),
    ] = None,
    platform: Annotated[
        str, typer.Option(help="iotedge: platform of the default agent image.")
    ] = "linux/amd64",
    priority: Annotated[int, typer.Option(help="iotedge: layer priority.")] = 100,
    detach: DetachOption = False,
    poll: PollOption = 2.0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a rollout and drive it stage by stage (Ctrl-C leaves it to `resume`)."""
    from amlpkg.packager import rollout as ro

    options: dict[str, Any] = {"priority": priority, "platform": platform}
    if image:
        options["image"] = image
    if agent_image:
        options["agent_image"] = agent_image
    with open_embedded("amlpkg rollout create", home) as ws:
        created = ro.create(
            ws, model, fleet_condition=fleet, stages=stages, gate=gate, soak=soak,
            quorum=quorum, max_wait=max_wait, target=target, model_url=model_url,
            desired_dir=desired_dir, options=options,
        )  # fmt: skip
    if as_json:
        print_json(created.to_dict())
    else:
        console.print(f"created rollout {created.id}", highlight=False)
    if not detach:
        _drive(home, created.id, poll)


@rollout_app.command("status")
def status_command(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where a rollout is, each stage's gate, and its devices."""
    from amlpkg.packager.rollout import records

    with open_embedded("amlpkg rollout status", home) as ws:
        rollout = records.get(ws, rollout_id)
        devices = records.devices(ws, rollout_id)
    if as_json:
        print_json({**rollout.to_dict(), "devices": [vars(d) for d in devices]})
        return
    for line in status_lines(rollout, devices):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@rollout_app.command("list")
def list_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Every rollout, newest first."""
    from amlpkg.packager.rollout import records

    with open_embedded("amlpkg rollout list", home) as ws:
        rollouts = records.list_rollouts(ws)
    if as_json:
        print_json([r.to_dict() for r in rollouts])
        return
    table = new_table("id", "model", "fleet", "state", "stage", "created")
    for r in rollouts:
        stage = f"{r.stage + 1}/{len(r.stages)} {r.phase}"
        table.add_row(r.id, r.model, r.fleet, r.state, stage, when(r.created))
    print_table(table)


@rollout_app.command("pause")
def pause_command(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")], home: HomeOption = None
) -> None:
    """Stop moving on (the driver exits; devices keep what they have)."""
    from amlpkg.packager.rollout import records

    with open_embedded("amlpkg rollout pause", home) as ws:
        records.set_state(ws, rollout_id, "paused", allowed=("running",))
    console.print(f"paused {rollout_id}", highlight=False)


@rollout_app.command("resume")
def resume_command(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    detach: DetachOption = False,
    poll: PollOption = 2.0,
    home: HomeOption = None,
) -> None:
    """Continue a paused rollout, or one whose driver died, from where it was."""
    from amlpkg.packager.rollout import records

    with open_embedded("amlpkg rollout resume", home) as ws:
        records.set_state(ws, rollout_id, "running", allowed=("running", "paused"))
    if not detach:
        _drive(home, rollout_id, poll)


@rollout_app.command("abort")
def abort_command(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")], home: HomeOption = None
) -> None:
    """Stop a rollout and put every device it changed back on its previous model."""
    from amlpkg.packager import rollout as ro

    with open_embedded("amlpkg rollout abort", home) as ws:
        aborted = ro.abort(ws, rollout_id, ro.applier_for(ro.records.get(ws, rollout_id)))
    console.print(f"aborted {aborted.id}; its devices' desired state is back", highlight=False)


@rollout_app.command("canary")
def canary_command(
    name: Annotated[str, typer.Argument(help="Kubernetes deployment with a pending canary.")],
    gate: Annotated[str, typer.Option(help="Checks, canary against serving revision.")] = (
        "p95_ms<=1.2*control,error_rate<0.01"
    ),
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Promote or roll back a Kubernetes canary by the gate (exit 1 when rolled back)."""
    from amlpkg.packager.deploy import canary
    from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget

    with open_embedded("amlpkg rollout canary", home) as ws:
        verdict, record = canary.decide(ws, KubernetesTarget(), name, gate)
    if as_json:
        print_json(verdict)
    elif record is None:
        why = "; ".join(verdict.get("waiting") or ["the canary has served no requests yet"])
        console.print(f"no decision: {why}", highlight=False, markup=False)
    else:
        console.print(f"{record.id}: {record.reason}", highlight=False, markup=False)
    if record is not None and not verdict["passed"]:
        raise typer.Exit(1)


@rollout_app.command("serve-desired")
def serve_desired_command(
    desired_dir: Annotated[Path, typer.Option(help="Folder of <device id>.json documents.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (agents poll /devices/<id>.json).")] = 8470,
) -> None:
    """Serve the per-device desired documents to `amlpkg-edge-agent --standalone URL`."""
    import time

    from amlpkg.packager.rollout.desired_http import serving_desired

    with serving_desired(desired_dir, host=host, port=port) as server:
        console.print(f"serving {desired_dir} at {server.url}/devices/<id>.json", highlight=False)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    """Add the ``rollout`` group to the root app."""
    app.add_typer(rollout_app, name="rollout", help="Staged, metric-gated fleet rollouts.")
