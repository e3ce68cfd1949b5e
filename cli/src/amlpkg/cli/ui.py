"""`amlpkg ui`: the web UI on the embedded workspace, for one user on 127.0.0.1."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from typing import Annotated

import typer

from amlpkg.cli.output import console
from amlpkg.cli.runs import HomeOption

UI_TOKEN_NAME = "amlpkg-ui"


def _open_when_ready(base: str, url: str) -> None:
    """Open the browser once the server answers (it starts in this process's main thread)."""
    import webbrowser

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    webbrowser.open(url)


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def ui(
    home: HomeOption = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8765,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the UI in a browser.")
    ] = True,
) -> None:
    """Serve the web UI on 127.0.0.1 with a fresh owner token, revoked when it stops."""
    from amlpkg.server import audit, tokens
    from amlpkg.server.roles import Role
    from amlpkg.server.serve import serve
    from amlpkg.server.settings import store_home
    from amlpkg.store.workspace import open_workspace

    workspace = store_home(None if home is None else str(home))
    with open_workspace(workspace) as ws:
        text, info = tokens.create_token(
            ws, role=Role.owner, name=UI_TOKEN_NAME, created_by="amlpkg ui",
            expires=tokens.parse_expiry("12h"),
        )  # fmt: skip
        audit.record(ws, actor="amlpkg ui", role=None, action="token create", target=info.id)
    base = f"http://127.0.0.1:{port}"
    # The token rides in the fragment: browsers never send it to a server or put it in logs;
    # the page moves it into this tab's sessionStorage and drops it from the address bar.
    url = f"{base}/ui/#token={text}"
    console.print(f"amlpkg ui: workspace {workspace}", highlight=False)
    console.print(f"open {url}", highlight=False, soft_wrap=True)
    if browser:
        threading.Thread(target=_open_when_ready, args=(base, url), daemon=True).start()
    # uvicorn re-raises SIGTERM after its graceful shutdown, to the handler found before it
    # started: make that one an exit, so the token is revoked below (Ctrl-C already is one).
    signal.signal(signal.SIGTERM, _exit)
    try:
        serve(workspace, host="127.0.0.1", port=port)
    finally:
        with open_workspace(workspace) as ws:
            tokens.revoke_token(ws, info.id)


def register(app: typer.Typer) -> None:
    """Add the `ui` command to the root app."""
    app.command("ui")(ui)
