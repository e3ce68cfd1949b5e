"""Shared by the supply-chain tests: EC key pairs and a workspace of signed versions."""

from __future__ import annotations

from pathlib import Path

import onnx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import register
from amlpkg.trainer.signing import export_signed, sign_model_version
from tests.runtime.toy_models import add_sub_model


def make_keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """A P-256 private key and its public key as PEM files ``<name>.pem``, ``<name>.pub``."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def signed_versions(home: Path, key: Path, name: str = "adder", count: int = 2) -> list[str]:
    """Register ``count`` versions of a toy model (widths 16, 17, ...) and sign each."""
    refs = []
    with open_workspace(home) as ws:
        for i in range(count):
            path = home.parent / f"{name}-{i}.onnx"
            onnx.save(add_sub_model(width=16), path)
            # Distinct bytes per version: the doc string differs.
            model = onnx.load(path)
            model.doc_string = f"version {i + 1}"
            onnx.save(model, path)
            version = register(name, path, workspace=ws)
            sign_model_version(version.ref, key, workspace=ws)
            refs.append(version.ref)
    return refs


def export_version(home: Path, ref: str, folder: Path) -> Path:
    """The signed version folder of ``ref`` written at ``folder``."""
    export_signed(ref, folder, home=home)
    return folder
