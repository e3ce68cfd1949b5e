"""Package rows in the workspace: what was built from which model version, and where it is."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from amlpkg.errors import NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import MODEL_VERSION_KIND

PACKAGE_KIND = "package"  # lineage node id: the package id
VARIANT_KIND = "variant"
RELATION = "packaged_as"
_COLUMNS = (
    "id, model_name, model_version, variant_id, flavor, platform, format, image_ref, image_id,"
    " repo_digest, path, size_bytes, labels, build_seconds, created"
)


@dataclass
class Package:
    """One build: an image (maybe pushed), a folder, a tarball or a Triton repository."""

    id: str
    model_name: str
    model_version: int
    flavor: str
    platform: str
    format: str
    variant_id: str | None = None
    image_ref: str | None = None
    image_id: str | None = None
    repo_digest: str | None = None
    path: str | None = None
    size_bytes: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    build_seconds: float | None = None
    created: float = field(default_factory=time.time)

    @property
    def model_ref(self) -> str:
        """``NAME:VERSION`` of the model inside."""
        return f"{self.model_name}:{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {**asdict(self), "model_ref": self.model_ref}


def new_package_id() -> str:
    """A short, unique, sortable-enough package id."""
    return f"pkg-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def record_package(
    ws: Workspace, package: Package, made: tuple[tuple[str, str], str] | None = None
) -> Package:
    """Insert the row and its lineage arrows in one transaction.

    Arrows: version (and variant) ``--packaged_as--> package``, and with ``made`` =
    ``(node, relation)`` one from the package to what it made (a pushed image digest).
    """
    with write_tx(ws.conn) as conn:
        conn.execute(
            f"INSERT INTO packages ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            (
                package.id,
                package.model_name,
                package.model_version,
                package.variant_id,
                package.flavor,
                package.platform,
                package.format,
                package.image_ref,
                package.image_id,
                package.repo_digest,
                package.path,
                package.size_bytes,
                json.dumps(package.labels, sort_keys=True),
                package.build_seconds,
                package.created,
            ),
        )
        add_edge_in_tx(
            conn, (MODEL_VERSION_KIND, package.model_ref), (PACKAGE_KIND, package.id), RELATION
        )
        if package.variant_id:
            add_edge_in_tx(
                conn, (VARIANT_KIND, package.variant_id), (PACKAGE_KIND, package.id), RELATION
            )
        if made is not None:
            add_edge_in_tx(conn, (PACKAGE_KIND, package.id), made[0], made[1])
    return package


def _from_row(row: Any) -> Package:
    data = dict(row)
    data["labels"] = json.loads(data["labels"] or "{}")
    return Package(**data)


def get_package(ws: Workspace, package_id: str) -> Package:
    """The package ``package_id``."""
    row = ws.conn.execute(f"SELECT {_COLUMNS} FROM packages WHERE id = ?", (package_id,)).fetchone()
    if row is None:
        raise NotFoundError(
            f"no package {package_id!r}",
            hint="amlpkg lineage NAME:VERSION lists the packages of a model version",
        )
    return _from_row(row)


def list_packages(ws: Workspace, model_name: str | None = None) -> list[Package]:
    """Packages, newest first, optionally of one model."""
    if model_name is None:
        rows = ws.conn.execute(f"SELECT {_COLUMNS} FROM packages ORDER BY created DESC")
    else:
        rows = ws.conn.execute(
            f"SELECT {_COLUMNS} FROM packages WHERE model_name = ? ORDER BY created DESC",
            (model_name,),
        )
    return [_from_row(row) for row in rows.fetchall()]
