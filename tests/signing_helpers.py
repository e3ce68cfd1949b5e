"""Shared by the supply-chain tests: EC key pairs and a workspace of signed versions."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class SignedFolders:
    """Signed version folders: v1 and v2 by the trusted key, and a v2 by another key."""

    trusted: Path
    """The trusted public key."""
    v1: Path
    v2: Path
    v2_other_key: Path


def signed_folders(root: Path, name: str = "adder") -> SignedFolders:
    """Two signed versions of ``name`` by a trusted key and one by another key, under ``root``."""
    key, pub = make_keypair(root, "trusted")
    other_key, _ = make_keypair(root, "other")
    refs = signed_versions(root / "ws", key, name)
    other_refs = signed_versions(root / "ws-other", other_key, name)
    return SignedFolders(
        pub,
        export_version(root / "ws", refs[0], root / "v1"),
        export_version(root / "ws", refs[1], root / "v2"),
        export_version(root / "ws-other", other_refs[1], root / "v2-other"),
    )
