"""`amlpkg server` (the team server) and `amlpkg server token create|list|revoke`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from amlpkg.cli.output import console, print_json

server_app = typer.Typer(
    help="The team server: the workspace over HTTP with tokens and roles.",
    invoke_without_command=True,
)
token_app = typer.Typer(help="API tokens of the workspace (shown once, stored hashed).")
server_app.add_typer(token_app, name="token")

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Workspace store: a folder or sqlite:///PATH (default: $AMLPKG_STORE, else"
        " $AMLPKG_HOME, else ./.amlpkg), or postgresql+psycopg://USER:PASSWORD@HOST/DB"
        " for a team (prefer $AMLPKG_STORE: a flag shows its password in ps).",
    ),
]


def _home(ctx: typer.Context) -> Path:
    """The local workspace folder; the store and artifact URLs go to this process's
    environment, where every workspace the server (or a token command) opens reads them."""
    import os

    from amlpkg.server.settings import workspace_settings

    obj = ctx.obj or {}
    settings = workspace_settings(obj.get("store"), obj.get("artifacts"))
    for name, value in (("AMLPKG_STORE", settings.store), ("AMLPKG_ARTIFACTS", settings.artifacts)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return settings.home.expanduser().resolve()


def _who() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


@server_app.callback()
def server(
    ctx: typer.Context,
    *,
    store: StoreOption = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            help="Artifact store: s3://BUCKET/PREFIX (endpoint from AMLPKG_S3_ENDPOINT_URL or"
            " AWS_ENDPOINT_URL; default: $AMLPKG_ARTIFACTS, else the workspace folder's own)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the workspace to a team (no subcommand), or manage its tokens."""
    ctx.obj = {"store": store, "artifacts": artifacts}
    if ctx.invoked_subcommand is not None:
        return
    from amlpkg.server.serve import serve
    from amlpkg.store.db import masked_url

    home = _home(ctx)
    scheme = "https" if tls_cert else "http"
    where = os.environ.get("AMLPKG_STORE")
    shown = f"store {masked_url(where)}" if where else f"workspace {home}"
    if os.environ.get("AMLPKG_ARTIFACTS"):
        shown += f", artifacts {os.environ['AMLPKG_ARTIFACTS']}"
    console.print(f"amlpkg server: {shown}", highlight=False)
    console.print(f"API {scheme}://{host}:{port}/api/v1, OpenAPI at /openapi.json", highlight=False)
    serve(home, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)


@token_app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="reader, contributor or owner.")],
    name: Annotated[str, typer.Option(help="Who or what uses it.")] = "token",
    expires: Annotated[str, typer.Option(help="Lifetime: 30d, 12h, 15m or never.")] = "90d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Make a token and print it once: it is stored only as a hash."""
    from amlpkg.errors import InvalidArgumentError
    from amlpkg.server import audit, tokens
    from amlpkg.server.roles import Role
    from amlpkg.store.workspace import open_workspace

    if role not in Role.__members__:
        raise InvalidArgumentError(
            f"unknown role {role!r}", hint="use reader, contributor or owner"
        )
    who = _who()
    with open_workspace(_home(ctx)) as ws:
        text, info = tokens.create_token(
            ws, role=Role(role), name=name, created_by=who, expires=tokens.parse_expiry(expires)
        )
        audit.record(ws, actor=who, role=None, action="token create", target=f"token:{info.id}")
    if as_json:
        print_json({"token": text, **info.to_dict()})
        return
    console.print(f"token {info.id} ({info.role.value}, {info.name}); shown only now:")
    print(text)


@token_app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Every token: id, name, role, expiry, whether it is revoked."""
    from amlpkg.cli.runs import when
    from amlpkg.server import tokens
    from amlpkg.store.workspace import open_workspace

    with open_workspace(_home(ctx)) as ws:
        found = tokens.list_tokens(ws)
    if as_json:
        print_json([t.to_dict() for t in found])
        return
    table = Table(title="API tokens")
    for column in ("id", "name", "role", "created", "expires", "state"):
        table.add_column(column)
    now = time.time()
    for t in found:
        state = "revoked" if t.revoked else "active" if t.active(now) else "expired"
        table.add_row(t.id, t.name, t.role.value, when(t.created), when(t.expires), state)
    console.print(table)


@token_app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token for good."""
    from amlpkg.server import audit, tokens
    from amlpkg.store.workspace import open_workspace

    who = _who()
    with open_workspace(_home(ctx)) as ws:
        info = tokens.revoke_token(ws, token_id)
        audit.record(ws, actor=who, role=None, action="token revoke", target=f"token:{info.id}")
    console.print(f"token {info.id} ({info.name}) revoked")


@server_app.command("manifests")
def manifests(
    ctx: typer.Context,
    *,
    image: Annotated[str, typer.Option(help="Container image with amlpkg[server] installed.")],
    secret: Annotated[
        str,
        typer.Option(
            help="Secret holding store-url, aws-access-key-id and aws-secret-access-key"
            " (referenced, never written)."
        ),
    ] = "amlpkg-server",
    replicas: Annotated[int, typer.Option(min=1, help="Server replicas.")] = 2,
    name: Annotated[str, typer.Option(help="Name of the Deployment and Service.")] = (
        "amlpkg-server"
    ),
    namespace: Annotated[str | None, typer.Option(help="Namespace of the objects.")] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option(help="S3 endpoint for an S3-compatible server.")
    ] = None,
    s3_public_endpoint: Annotated[
        str | None,
        typer.Option(
            help="S3 endpoint clients reach, for presigned upload URLs, when --s3-endpoint"
            " is only reachable inside the cluster."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Kubernetes manifests (Deployment with probes, Service) for replicas on PostgreSQL + S3.

    The bucket comes from --artifacts (or $AMLPKG_ARTIFACTS); the database URL and the
    bucket's keys from the Secret, by reference.
    """
    from amlpkg.server.manifests import ServerManifest, to_yaml
    from amlpkg.server.manifests import manifests as build

    obj = ctx.obj or {}
    artifacts = obj.get("artifacts") or os.environ.get("AMLPKG_ARTIFACTS") or ""
    spec = ServerManifest(
        image=image,
        artifacts=artifacts,
        secret=secret,
        name=name,
        namespace=namespace,
        replicas=replicas,
        s3_endpoint=s3_endpoint,
        s3_public_endpoint=s3_public_endpoint,
    )
    text = to_yaml(build(spec))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {output}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `server` command group to the root app."""
    app.add_typer(server_app, name="server")
