"""Model files to and from a team server: a version's ONNX file down, variant files and rows up.

Every file is checked by sha256 on both ends: a download whose bytes do not match
the version's digest is an :class:`IntegrityError` (and is deleted), an upload
carries its digest and the server refuses other bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from amlpkg.errors import IntegrityError
from amlpkg.trainer.remote.client import (
    PermissionDeniedError,
    TeamClient,
    file_chunks,
    file_sha256,
)

Json = dict[str, Any]


def require_contributor(client: TeamClient, command: str) -> None:
    """Refuse a reader token before minutes of work whose result it may not record."""
    role = client.request("GET", "/whoami").json().get("role")
    if role == "reader":
        raise PermissionDeniedError(
            f"a reader token may not record what `{command}` makes on {client.server.url}",
            hint="use a contributor token (amlpkg login URL --token ...), or --home DIR to"
            " work in a local workspace",
        )


def _version_path(name: str, version: int) -> str:
    return f"/models/{quote(name, safe='')}/versions/{int(version)}"


def download(client: TeamClient, url: str, sha256: str, dest: Path, what: str) -> int:
    """Write the file at ``url`` to ``dest``, checked against ``sha256``; return its size."""
    digest = hashlib.sha256()
    size = 0
    try:
        with client.stream("GET", url) as answer, dest.open("wb") as out:
            for chunk in answer.iter_bytes():
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"{what} from {client.server.url} has sha256 {digest.hexdigest()[:12]}...,"
                f" not the recorded {sha256[:12]}...",
                hint="try again; if it persists the server's copy is damaged",
            )
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size


def download_version_file(
    client: TeamClient, name: str, version: int, sha256: str, dest: Path
) -> int:
    """Write the version's ONNX file to ``dest``, its digest checked; return its size."""
    url = f"{_version_path(name, version)}/file"
    return download(client, url, sha256, dest, f"the file of {name}:{version}")


def download_artifact(client: TeamClient, run_id: str, artifact: Json, dest: Path) -> int:
    """Write a run's artifact (as :meth:`TeamClient.list_artifacts` lists it) to ``dest``."""
    path = str(artifact["path"])
    url = f"/runs/{quote(run_id, safe='')}/artifacts/{quote(path, safe='/')}"
    return download(client, url, str(artifact["sha256"]), dest, f"artifact {path}")


def upload_variant_file(client: TeamClient, name: str, version: int, path: Path) -> tuple[str, int]:
    """Send a variant's ONNX file (streamed, sha256 declared); answer ``(sha256, size)``."""
    digest, size = file_sha256(path)
    body = client.request(
        "PUT",
        f"{_version_path(name, version)}/variant-files",
        params={"sha256": digest},
        content=file_chunks(path),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        idempotent=False,  # the body is a generator: it cannot be sent twice
    ).json()
    return str(body["sha256"]), int(body["size"])


def record_variants(client: TeamClient, name: str, version: int, rows: list[Json]) -> list[Json]:
    """Record variants (files uploaded first) with their lineage edges; answer the rows."""
    body = {"variants": rows}
    url = f"{_version_path(name, version)}/variants"
    return list(client.request("POST", url, json=body, idempotent=False).json())


def list_variants(client: TeamClient, name: str, version: int, target: str) -> list[Json]:
    """The variants of a version for one target, oldest first."""
    url = f"{_version_path(name, version)}/variants"
    return list(client.request("GET", url, params={"target": target}).json())


def download_variant_file(client: TeamClient, variant: Json, dest: Path) -> int:
    """Write a variant's ONNX file (as :func:`list_variants` lists it) to ``dest``, checked."""
    name, _, version = str(variant["parent"]).rpartition(":")
    url = f"{_version_path(name, int(version))}/file?variant={quote(str(variant['id']), safe='')}"
    return download(client, url, str(variant["sha256"]), dest, f"variant {variant['id']}")


def record_package(client: TeamClient, package: Json) -> Json:
    """Record a package built here (with ``made``: the node it made) and its lineage edges."""
    return dict(client.request("POST", "/packages", json=package, idempotent=False).json())
