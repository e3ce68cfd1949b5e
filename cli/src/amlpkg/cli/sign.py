"""`amlpkg models sign` and `amlpkg models verify`: OpenSSF Model Signing bundles."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amlpkg.cli.output import console, print_json
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption
from amlpkg.trainer.remote.config import tracking_server

if TYPE_CHECKING:
    from amlpkg.runtime.signing import Trust, Verified

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="PEM EC private key (P-256/384/521) to sign with; default: $AMLPKG_SIGNING_KEY."
        " An encrypted key reads its password from $AMLPKG_SIGNING_KEY_PASSWORD.",
    ),
]


def sign_command(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME, NAME@ALIAS).")],
    key: KeyOption = None,
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a model version offline with a key: bundle + SLSA provenance, in the lineage.

    Against a team server the version is signed here (the key never leaves this
    machine) and the signature is kept on the server.
    """
    from amlpkg.errors import InvalidArgumentError
    from amlpkg.trainer.remote.signatures import sign_on_server
    from amlpkg.trainer.signing import configured_key, sign_model_version

    key = key or configured_key()
    if key is None:
        raise InvalidArgumentError(
            "no signing key", hint="pass --key KEY.pem or set AMLPKG_SIGNING_KEY"
        )
    server = tracking_server(home, tracking_uri)
    if server is not None:
        record = sign_on_server(server, ref, key)
    else:
        record = sign_model_version(ref, key, home=home)
    if as_json:
        print_json(record.to_dict())
        return
    console.print(
        f"[green]signed[/] [bold]{record.ref}[/] by {record.signer}"
        f" (bundle sha256 {record.bundle_sha256[:12]}, provenance"
        f" sha256 {record.provenance_sha256[:12]})"
    )


def verify_command(
    ref: Annotated[
        str,
        typer.Argument(help="NAME:VERSION (or NAME, NAME@ALIAS), or an optimized variant's id."),
    ],
    trust: Annotated[
        Path, typer.Option("--trust", help="The signer's PEM public key or a PEM root chain.")
    ],
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a version's stored signature offline; the result goes into the lineage."""
    from amlpkg.runtime.signing import Trust

    checker = Trust(trust)
    where = f"cli:{checker.signer}"
    server = tracking_server(home, tracking_uri)
    if server is not None:
        from amlpkg.trainer.remote.signatures import verify_on_server

        verified = verify_on_server(server, ref, where, checker.verify_folder)
    else:
        verified = _verify_here(ref, checker, where, home)
    if as_json:
        print_json(verified.parameters())
        return
    console.print(
        f"[green]verified[/] {ref}: {verified.digest} signed by {verified.signer}"
        f" (signed version {verified.release.version})"
    )


def _verify_here(ref: str, checker: Trust, where: str, home: Path | None) -> Verified:
    """Verify in the embedded workspace (a version or an optimized variant) and record it."""
    from amlpkg.errors import AmlpkgError
    from amlpkg.packager.optimize.signing import export_signed_variant
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.signing import export_signed, record_verification

    with open_workspace(home) as ws, tempfile.TemporaryDirectory(prefix="amlpkg-verify-") as tmp:
        folder = Path(tmp) / "version"
        if "/" in ref:  # a variant id: NAME:VERSION/target/kind-precision/<hex>
            record = export_signed_variant(ws, ref, folder)
        else:
            record = export_signed(ref, folder, workspace=ws)
        try:
            verified = checker.verify_folder(folder)
        except AmlpkgError:
            record_verification(ref, where, False, workspace=ws, record=record)
            raise
        record_verification(ref, where, True, workspace=ws, record=record)
    return verified


def register(models_app: typer.Typer) -> None:
    """Add the signing commands to the ``models`` group."""
    models_app.command("sign")(sign_command)
    models_app.command("verify")(verify_command)
