"""`amlpkg login URL` / `amlpkg logout`: a team server's URL and token in the user's config."""

from __future__ import annotations

from typing import Annotated

import typer

from amlpkg.cli.output import console, error_console
from amlpkg.errors import UnauthenticatedError
from amlpkg.trainer.remote.config import (
    Server,
    forget_login,
    is_loopback,
    mask,
    normalize_url,
    save_login,
)


def login(url: str, token: str) -> Server:
    """Check ``token`` against the server at ``url``, then keep both; return the server."""
    from amlpkg.trainer.remote.client import TeamClient

    server = Server(normalize_url(url), token.strip())
    with TeamClient(server, retries=1) as client:
        client.health()  # an amlpkg server answers there, before the token is sent anywhere else
        try:
            client.check_token()
        except UnauthenticatedError as exc:
            raise UnauthenticatedError(
                f"{server.url} refused the token {mask(server.token)}: {exc.message}",
                hint="check the token, or ask a workspace owner for one"
                " (amlpkg server token create)",
            ) from None
    save_login(server)
    return server


def register(app: typer.Typer) -> None:
    """Add ``login`` and ``logout`` to the root app."""

    @app.command("login")
    def login_command(
        url: Annotated[str, typer.Argument(help="The team server, e.g. https://ml.example.")],
        token: Annotated[
            str | None,
            typer.Option(
                "--token",
                help="API token (amlpkg server token create); asked for, hidden, if left out.",
            ),
        ] = None,
    ) -> None:
        """Log in to a team server: runs, models and lineage then go there."""
        if token is None:
            token = typer.prompt("API token", hide_input=True)
        if not is_loopback(url) and url.strip().lower().startswith("http://"):
            error_console.print(
                "[yellow]warning:[/] plain http: the token crosses the network unencrypted;"
                " serve the team server with --tls-cert/--tls-key and use https://"
            )
        server = login(url, token)
        from amlpkg.trainer.remote.config import credentials_path

        console.print(
            f"[green]logged in[/] to {server.url} with {mask(server.token)}"
            f" (kept in {credentials_path()})",
            highlight=False,
        )

    @app.command("logout")
    def logout_command(
        url: Annotated[
            str | None, typer.Argument(help="The server to forget (default: the current one).")
        ] = None,
    ) -> None:
        """Forget a team server's token; commands use the embedded workspace again."""
        dropped = forget_login(url)
        if dropped is None:
            console.print("not logged in" + (f" to {url}" if url else ""), highlight=False)
            return
        console.print(f"[green]logged out[/] of {dropped}", highlight=False)
