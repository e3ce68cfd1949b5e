"""`amlpkg deploy` and `amlpkg deployments list/show/status/delete/rollback`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpkg.cli.output import console, error_console, new_table, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption, when
from amlpkg.trainer.remote.config import tracking_server
from amlpkg.trainer.remote.fleet import open_fleet

if TYPE_CHECKING:
    from amlpkg.packager.deploy.options import DeployOptions
    from amlpkg.packager.deploy.targets.base import Plan

deployments_app = typer.Typer(no_args_is_help=True)

_K8S = "kubernetes options"
_EDGE = "iotedge options"
_LOCAL = "local options"
_DOCKER = "docker options"


def _opt(help_text: str, panel: str | None = None, **kwargs: Any) -> Any:
    return typer.Option(help=help_text, rich_help_panel=panel, **kwargs)


def _print_record(data: dict[str, Any]) -> None:
    endpoints = data["endpoints"]
    console.print(
        f"[bold]{data['id']}[/] \\[{data['status']}] on {data['target']}: "
        f"{data['model'] or data['package'] or data['image']}"
    )
    if endpoints["http"]:
        console.print(f"  http  {endpoints['http']}")
        console.print(f"  grpc  {endpoints['grpc']}")
    if data["reason"]:
        console.print(f"  reason: {data['reason']}")


# CLI parameter -> deploy option, where the names differ.
_RENAMED = {
    "ready_timeout": "ready_timeout_s",
    "drain_grace": "drain_grace_s",
    "telemetry": "telemetry_endpoint",
    "canary": "canary_percent",
}
_NOT_OPTIONS = frozenset(
    {"source", "name", "target", "dry_run", "output", "home", "tracking_uri", "as_json"}
)


def _typed_options(target: str, params: dict[str, Any]) -> DeployOptions:
    """The target's typed options from the parsed CLI parameters (validated once, here)."""
    from amlpkg.packager.deploy import options as deploy_options

    given = {_RENAMED.get(k, k): v for k, v in params.items() if k not in _NOT_OPTIONS}
    given["kserve"] = given.pop("kserve") or None  # flags: only "on" counts as given
    given["wait"] = False if given.pop("no_wait") else None
    if target != "iotedge":
        # May come from AMLPKG_IOTHUB_CONNECTION_STRING, which is no reason to warn.
        given.pop("iothub_connection_string")
    given = {k: v for k, v in given.items() if v is not None}
    ignored = deploy_options.foreign_keys(target, given)
    for key in ignored:
        flag = "--" + next((p for p, o in _RENAMED.items() if o == key), key).replace("_", "-")
        error_console.print(f"warning: {flag} is not a {target} option; ignored", markup=False)
    return deploy_options.parse(target, {k: v for k, v in given.items() if k not in ignored})


def _print_plan(plan: Plan, output: Path | None) -> None:
    if output is not None:
        for path in plan.write(output):
            print(f"wrote {path}")  # plain: Rich would wrap long paths
    elif plan.documents:
        for text in plan.documents.values():
            print(text, end="")
    else:
        for step in plan.steps:
            console.print(f"- {step}")


def register(app: typer.Typer) -> None:
    """Add `deploy` and the `deployments` group to the root app."""

    @app.command("deploy")
    def deploy_command(  # noqa: PLR0917 - one parameter per CLI option, as Typer wants
        ctx: typer.Context,
        source: Annotated[
            str,
            typer.Argument(
                help="Model NAME:VERSION / NAME@ALIAS, a package folder, or"
                " oci://REGISTRY/REPO:TAG|@sha256:... (a ModelPack artifact or a modelcar image)."
            ),
        ],
        name: Annotated[
            str,
            typer.Option(
                "--name", "-n", help="Deployment name (keeps its endpoint across versions)."
            ),
        ],
        target: Annotated[
            str, typer.Option("--target", "-t", help="local, docker, kubernetes or iotedge.")
        ] = "local",
        image: Annotated[str | None, _opt("Image to run (default: the latest build).")] = None,
        trust: Annotated[
            Path | None,
            _opt("PEM public key or root: an oci:// source's signature must verify."),
        ] = None,
        dry_run: Annotated[bool, _opt("Print what would be applied; change nothing.")] = False,
        output: Annotated[Path | None, _opt("Write the manifests into this folder.")] = None,
        host: Annotated[str | None, _opt("Address of the stable endpoint.", _LOCAL)] = None,
        port: Annotated[int | None, _opt("HTTP port (local: stable endpoint).", _LOCAL)] = None,
        grpc_port: Annotated[int | None, _opt("gRPC port.", _LOCAL)] = None,
        ready_timeout: Annotated[
            float | None, _opt("Seconds to wait for readiness / rollout.")
        ] = None,
        drain_grace: Annotated[
            float | None, _opt("Seconds the old revision may drain.", _LOCAL)
        ] = None,
        docker_host: Annotated[
            str | None, _opt("unix://, tcp:// (TLS) or ssh://user@host.", _DOCKER)
        ] = None,
        cpus: Annotated[float | None, _opt("CPU limit of the container.", _DOCKER)] = None,
        restart: Annotated[
            str | None, _opt("Restart policy (default unless-stopped).", _DOCKER)
        ] = None,
        namespace: Annotated[str | None, _opt("Namespace.", _K8S)] = None,
        replicas: Annotated[int | None, _opt("Replicas.", _K8S, min=1)] = None,
        min_replicas: Annotated[int | None, _opt("HPA minimum.", _K8S, min=1)] = None,
        max_replicas: Annotated[int | None, _opt("HPA maximum.", _K8S, min=1)] = None,
        cpu: Annotated[str | None, _opt("CPU request, e.g. 500m.", _K8S)] = None,
        memory: Annotated[str | None, _opt("Memory (docker limit, k8s request), e.g. 1Gi.")] = None,
        flavor: Annotated[str | None, _opt("cpu, cuda or tensorrt (GPU request).", _K8S)] = None,
        gpus: Annotated[int | None, _opt("GPUs per pod (cuda/tensorrt).", _K8S, min=1)] = None,
        kserve: Annotated[bool, _opt("A KServe InferenceService instead.", _K8S)] = False,
        no_wait: Annotated[bool, _opt("Do not wait for the rollout.", _K8S)] = False,
        canary: Annotated[
            float | None,
            _opt(
                "Start as a canary with this % of traffic beside the serving revision"
                " (promote or roll back: amlpkg rollout canary NAME).",
                _K8S,
                min=0.0,
                max=100.0,
            ),
        ] = None,
        platform: Annotated[str | None, _opt("linux/amd64 or linux/arm64.", _EDGE)] = None,
        device_id: Annotated[str | None, _opt("Apply to this one device.", _EDGE)] = None,
        target_condition: Annotated[
            str | None, _opt("Layered deployment, e.g. \"tags.site='plant1'\".", _EDGE)
        ] = None,
        priority: Annotated[int | None, _opt("Layered deployment priority.", _EDGE)] = None,
        iothub_connection_string: Annotated[
            str | None,
            _opt("IoT Hub service connection.", _EDGE, envvar="AMLPKG_IOTHUB_CONNECTION_STRING"),
        ] = None,
        model_url: Annotated[str | None, _opt("Where devices download the model.", _EDGE)] = None,
        model_oci: Annotated[str | None, _opt("OCI artifact holding the model.", _EDGE)] = None,
        agent_image: Annotated[
            str | None,
            _opt(
                "The edge agent image, pinned by digest (default: the newest one built with"
                " amlpkg build --flavor edge-agent --push; kubernetes: fetches oci:// ModelPack"
                " models).",
                _EDGE,
            ),
        ] = None,
        registry: Annotated[str | None, _opt("Registry needing credentials.", _EDGE)] = None,
        registry_username: Annotated[str | None, _opt("Its user name.", _EDGE)] = None,
        telemetry: Annotated[
            str | None,
            _opt(
                "OTLP/HTTP endpoint the runtimes export traces and output summaries to"
                " (local, docker and kubernetes targets)."
            ),
        ] = None,
        telemetry_token_file: Annotated[
            str | None,
            _opt(
                "File holding --telemetry's token (a team server's contributor token), given to"
                " the runtime as OTEL_EXPORTER_OTLP_HEADERS; the path is recorded (a rollback"
                " reads it again), the token never (local, docker)."
            ),
        ] = None,
        telemetry_token_secret: Annotated[
            str | None,
            _opt(
                "NAME/KEY of a Secret holding --telemetry's token; the pods read it by"
                " secretKeyRef (kubernetes)."
            ),
        ] = None,
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Deploy a model version or package; verified, recorded, blue/green on local.

        Against a team server the deploy runs from here and is recorded there."""
        from amlpkg.packager.deploy import api, remote

        server = tracking_server(home, tracking_uri)
        options = _typed_options(target, ctx.params)
        if dry_run or output is not None:
            if server is None:
                plan = api.plan(source, target=target, name=name, options=options, home=home)
            else:
                plan = remote.plan(server, source, target=target, name=name, options=options)
            _print_plan(plan, output)
            return
        with console.status(f"deploying {source} to {target} as {name} ..."):
            if server is None:
                record = api.deploy(source, target=target, name=name, options=options, home=home)
            else:
                record = remote.deploy(server, source, target=target, name=name, options=options)
        if as_json:
            print_json(record.to_dict())
            return
        _print_record(record.to_dict())

    @deployments_app.command("list")
    def list_command(
        home: HomeOption = None, tracking_uri: TrackingUriOption = None, as_json: JsonOption = False
    ) -> None:
        """Every deployment with its newest revision."""
        from amlpkg.packager.deploy import api

        with open_fleet(home, tracking_uri) as remote:
            if remote is not None:
                rows = remote.list_deployments()
            else:
                rows = [r.to_dict() for r in api.list_deployments(home=home)]
        if as_json:
            print_json(rows)
            return
        table = new_table(
            "name", "revision", "target", "status", "model", "http", "grpc", "updated"
        )
        for row in rows:
            table.add_row(
                row["name"],
                str(row["revision"]),
                row["target"],
                row["status"],
                row["model"] or row["image"] or "-",
                row["endpoints"]["http"] or "-",
                row["endpoints"]["grpc"] or "-",
                when(row["updated"]),
            )
        print_table(table)

    @deployments_app.command("show")
    def show_command(
        name: Annotated[str, typer.Argument(help="Deployment name.")],
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """The serving revision, its endpoints and the history of the deployment."""
        from amlpkg.packager.deploy import api

        with open_fleet(home, tracking_uri) as remote:
            data = api.show(name, home=home) if remote is None else remote.show_deployment(name)
        if as_json:
            print_json(data)
            return
        for row in data["history"]:
            _print_record(row)
            console.print(f"  by {row['created_by']} at {when(row['created'])}")

    @deployments_app.command("status")
    def status_command(
        name: Annotated[str, typer.Argument(help="Deployment name.")],
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """The record and what really runs (processes, endpoint readiness, rollout)."""
        from amlpkg.packager.deploy import api, remote

        server = tracking_server(home, tracking_uri)
        data = api.status(name, home=home) if server is None else remote.status(server, name)
        if as_json:
            print_json(data)
            return
        _print_record(data)
        for key, value in data["live"].items():
            if isinstance(value, dict):
                for sub, facts in value.items():
                    console.print(f"  {key} {sub}: {facts}", markup=False)
            else:
                console.print(f"  {key}: {value}", markup=False)

    @deployments_app.command("delete")
    def delete_command(
        name: Annotated[str, typer.Argument(help="Deployment name.")],
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
    ) -> None:
        """Stop the deployment; its records stay as history."""
        from amlpkg.packager.deploy import api, remote

        server = tracking_server(home, tracking_uri)
        record = api.delete(name, home=home) if server is None else remote.delete(server, name)
        console.print(f"{record.id} {record.status}: {record.reason}")

    @deployments_app.command("rollback")
    def rollback_command(
        name: Annotated[str, typer.Argument(help="Deployment name.")],
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Return to the revision before the serving one (blue/green on local)."""
        from amlpkg.packager.deploy import api, remote

        server = tracking_server(home, tracking_uri)
        with console.status(f"rolling back {name} ..."):
            if server is None:
                record = api.rollback(name, home=home)
            else:
                record = remote.rollback(server, name)
        if as_json:
            print_json(record.to_dict())
            return
        _print_record(record.to_dict())

    app.add_typer(deployments_app, name="deployments", help="List, show, check, delete, roll back.")
