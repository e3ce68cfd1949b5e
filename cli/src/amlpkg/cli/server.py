"""`amlpkg server` (the team server) and `amlpkg server token create|list|revoke`."""

from __future__ import annotations

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
        help="Workspace store: a folder or sqlite:///PATH (default: $AMLPKG_HOME, else"
        " ./.amlpkg). PostgreSQL comes next.",
    ),
]


def _home(ctx: typer.Context) -> Path:
    from amlpkg.server.settings import store_home

    return store_home(ctx.obj.get("store") if ctx.obj else None)


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
        typer.Option(help="Artifact store (the embedded store keeps its own). S3 comes next."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the workspace to a team (no subcommand), or manage its tokens."""
    ctx.obj = {"store": store}
    if ctx.invoked_subcommand is not None:
        return
    from amlpkg.server.serve import serve
    from amlpkg.server.settings import check_artifacts

    home = _home(ctx)
    check_artifacts(artifacts, home)
    scheme = "https" if tls_cert else "http"
    console.print(f"amlpkg server: workspace {home}", highlight=False)
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


def register(app: typer.Typer) -> None:
    """Add the `server` command group to the root app."""
    app.add_typer(server_app, name="server")
