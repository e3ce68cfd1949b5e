"""`amlpkg workspace export|import`: move a whole workspace between stores (ids kept)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amlpkg.cli.output import console, print_json
from amlpkg.cli.runs import HomeOption, JsonOption

if TYPE_CHECKING:
    from amlpkg.store.transfer import TransferSummary

app = typer.Typer(no_args_is_help=True)

ArchiveArgument = Annotated[
    Path, typer.Argument(help="The workspace archive (.tar).", dir_okay=False)
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Database: sqlite:///PATH or postgresql+psycopg://... (default: $AMLPKG_STORE,"
        " else the SQLite file in --home).",
    ),
]
ArtifactsOption = Annotated[
    str | None,
    typer.Option(
        "--artifacts",
        help="Artifact store: s3://BUCKET/PREFIX (default: $AMLPKG_ARTIFACTS, else the folder"
        " in --home).",
    ),
]


@app.command("export")
def export_command(
    archive: ArchiveArgument,
    home: HomeOption = None,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write every table and artifact of the workspace to ARCHIVE."""
    from amlpkg.store.transfer import export_workspace
    from amlpkg.store.workspace import open_workspace

    with open_workspace(home, store=store, artifacts=artifacts) as ws:
        summary = export_workspace(ws, archive)
    _report("exported", archive, summary, as_json)


@app.command("import")
def import_command(
    archive: ArchiveArgument,
    home: HomeOption = None,
    store: StoreOption = None,
    artifacts: ArtifactsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load ARCHIVE into an empty workspace, keeping every id."""
    from amlpkg.store.transfer import import_workspace
    from amlpkg.store.workspace import open_workspace

    with open_workspace(home, store=store, artifacts=artifacts) as ws:
        summary = import_workspace(ws, archive)
    _report("imported", archive, summary, as_json)


def _report(verb: str, archive: Path, summary: TransferSummary, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "archive": str(archive),
                "tables": summary.tables,
                "blobs": summary.blobs,
                "blob_bytes": summary.blob_bytes,
            }
        )
        return
    rows = sum(summary.tables.values())
    console.print(
        f"{verb} {rows} rows in {len(summary.tables)} tables and {summary.blobs} artifacts"
        f" ({summary.blob_bytes} bytes): {archive}"
    )


def register(app_: typer.Typer) -> None:
    """Add the `workspace` group to the root command."""
    app_.add_typer(app, name="workspace", help="Export a workspace to an archive and import it.")
