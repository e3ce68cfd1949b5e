"""`amlpkg push` / `amlpkg pull`: model versions as CNCF ModelPack OCI artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amlpkg.cli.output import console, print_json
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption
from amlpkg.trainer.remote.config import tracking_server


def push_command(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME, NAME@ALIAS).")],
    target: Annotated[str, typer.Argument(help="oci://HOST[:PORT]/REPO:TAG")],
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Push a model version as a ModelPack artifact; its signature and provenance as referrers.

    Against a team server the version and its signature come from the server.
    """
    from amlpkg.packager.oci.modelpack import push_model_version
    from amlpkg.packager.oci.remote import push_from_server

    server = tracking_server(home, tracking_uri)
    if server is not None:
        pushed = push_from_server(server, ref, target)
    else:
        pushed = push_model_version(ref, target, home=home)
    if as_json:
        print_json(pushed.__dict__)
        return
    console.print(f"[green]pushed[/] {ref} -> {pushed.reference}")
    if pushed.signature_digest is None:
        console.print("[yellow]unsigned:[/] sign it first (amlpkg models sign) to attach one")


def pull_command(
    source: Annotated[str, typer.Argument(help="oci://HOST/REPO@sha256:... (or :TAG)")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Version folder to write (model.onnx, ...).")
    ],
    trust: Annotated[
        Path | None, typer.Option("--trust", help="Verify with this PEM public key / root.")
    ] = None,
    provenance: Annotated[
        Path | None, typer.Option("--provenance", help="Also write the SLSA provenance here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Pull a ModelPack artifact (digests checked) and, with --trust, verify its signature."""
    from amlpkg.packager.oci.modelpack import pull_model

    pulled = pull_model(source, output)
    if provenance is not None and pulled.provenance is not None:
        provenance.write_bytes(pulled.provenance)
    result: dict[str, object] = {"digest": pulled.digest, "files": pulled.files}
    if trust is not None:
        from amlpkg.runtime.signing import Trust

        result.update(Trust(trust).verify_folder(output).parameters())
    if as_json:
        print_json(result)
        return
    console.print(f"[green]pulled[/] {pulled.digest} -> {output} ({', '.join(pulled.files)})")
    if trust is not None:
        console.print(f"[green]verified[/] signed by {result['signature_signer']}")


def register(app: typer.Typer) -> None:
    """Add ``push`` and ``pull`` to the root command."""
    app.command("push")(push_command)
    app.command("pull")(pull_command)
