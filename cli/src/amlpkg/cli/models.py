"""`amlpkg models register/list/show/alias`: the model registry, in the workspace or on a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from amlpkg.cli.output import console, print_json, print_table
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption, when
from amlpkg.errors import InvalidArgumentError
from amlpkg.trainer import signing
from amlpkg.trainer.refs import parse_model_ref
from amlpkg.trainer.registry import ModelVersion
from amlpkg.trainer.remote.backend import RemoteBackend, open_backend
from amlpkg.trainer.remote.signatures import sign_with

app = typer.Typer(no_args_is_help=True)


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; refuse items without '='."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(f"invalid tag {pair!r}", hint="use --tag key=value")
        tags[key.strip()] = value
    return tags


def _shape(value: Any) -> str:
    return "?" if value is None else "[" + ", ".join(str(d) for d in value) + "]"


def print_version(version: ModelVersion) -> None:
    """A model version as Rich tables: fields, then the signature."""
    info = Table(show_header=False, title=f"model {version.ref}")
    info.add_column("field", style="bold")
    info.add_column("value")
    for key, value in (
        ("aliases", ", ".join(version.aliases) or "-"),
        ("sha256", version.sha256),
        ("size", f"{version.size} bytes"),
        ("opset", version.opset),
        ("run", version.run_id),
        ("source", version.source),
        ("description", version.description),
        ("created", when(version.created)),
        ("tags", ", ".join(f"{k}={v}" for k, v in version.tags.items()) or "-"),
    ):
        info.add_row(key, "-" if value is None else str(value))
    print_table(info)
    table = Table(title="signature")
    for column in ("", "name", "datatype", "shape"):
        table.add_column(column)
    for kind in ("inputs", "outputs"):
        for item in version.signature.get(kind, []):
            table.add_row(
                kind[:-1],
                item["name"],
                item.get("datatype") or item["elem_type"],
                _shape(item["shape"]),
            )
    print_table(table)


@app.command("register")
def register_command(  # noqa: PLR0917 - Typer maps parameters to CLI arguments
    name: Annotated[str, typer.Argument(help="Model name (letters, digits, '.', '_', '-').")],
    source: Annotated[
        str, typer.Argument(help="An .onnx file, or runs:/<run_id>/<artifact path>.")
    ],
    run: Annotated[str | None, typer.Option("--run", help="The run that made the model.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="key=value; repeat for more.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key", help="Sign the new version with this PEM EC key (or $AMLPKG_SIGNING_KEY)."
        ),
    ] = None,
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an ONNX model as the next version of NAME."""
    key = sign_key or signing.configured_key()
    with open_backend(home, tracking_uri) as backend:
        if key is not None:
            signing.load_signer(key)  # a bad key is refused before anything is registered
        version = backend.register(name, source, run, parse_tags(tag or []), description)
        if key is not None:
            if isinstance(backend, RemoteBackend):
                record = sign_with(backend, version.ref, key)
            else:
                record = signing.sign_model_version(version.ref, key, home=home)
            if not as_json:
                console.print(f"[green]signed[/] {version.ref} by {record.signer}")
    if as_json:
        print_json(version.to_dict())
        return
    console.print(
        f"[green]registered[/] [bold]{version.ref}[/] (sha256 {version.sha256[:12]},"
        f" {version.size} bytes, opset {version.opset})"
    )


@app.command("list")
def list_command(
    home: HomeOption = None, tracking_uri: TrackingUriOption = None, as_json: JsonOption = False
) -> None:
    """List registered models."""
    with open_backend(home, tracking_uri) as backend:
        models = backend.list_models()
    if as_json:
        print_json(models)
        return
    table = Table(title=f"models ({len(models)})")
    for column in ("name", "latest", "versions", "aliases", "created"):
        table.add_column(column)
    for m in models:
        aliases = ", ".join(f"{a}->{v}" for a, v in m["aliases"].items())
        table.add_row(
            m["name"], str(m["latest_version"]), str(m["versions"]), aliases, when(m["created"])
        )
    print_table(table)


@app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="NAME (every version), NAME:VERSION or NAME@ALIAS.")],
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model's versions, or one version with its signature."""
    parsed = parse_model_ref(ref)
    with open_backend(home, tracking_uri) as backend:
        if parsed.version is None and parsed.alias is None:
            versions = backend.list_versions(parsed.name)
        else:
            version = backend.get_model_version(ref)
    if parsed.version is None and parsed.alias is None:
        if as_json:
            print_json([v.to_dict() for v in versions])
            return
        table = Table(title=f"model {parsed.name}")
        for column in ("version", "aliases", "sha256", "size", "opset", "run", "created"):
            table.add_column(column)
        for v in versions:
            table.add_row(
                str(v.version),
                ", ".join(v.aliases),
                v.sha256[:12],
                str(v.size),
                str(v.opset),
                (v.run_id or "-")[:12],
                when(v.created),
            )
        print_table(table)
        return
    if as_json:
        print_json(version.to_dict())
        return
    print_version(version)


@app.command("alias")
def alias_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(min=1, help="Version the alias points to.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Point NAME@ALIAS at VERSION."""
    with open_backend(home, tracking_uri) as backend:
        backend.set_alias(name, version, alias)
    console.print(f"[green]{name}@{alias}[/] -> version {version}")
