"""Workspace integrity: every recorded blob exists and matches its digest."""

from __future__ import annotations

from amlpkg.errors import AmlpkgError
from amlpkg.store.workspace import Workspace


def check_integrity(ws: Workspace) -> list[str]:
    """Problems found (empty when sound): missing or corrupt blobs of versions and artifacts."""
    problems: list[str] = []
    rows = ws.conn.execute(
        "SELECT 'model ' || name || ':' || version, sha256, size FROM model_versions"
        " UNION ALL SELECT 'run ' || run_id || ' artifact ' || path, sha256, size FROM artifacts"
    ).fetchall()
    for owner, digest, size in rows:
        try:
            path = ws.artifacts.verified_path(digest)
        except AmlpkgError as exc:
            problems.append(f"{owner}: {exc.message}")
            continue
        if path.stat().st_size != size:
            problems.append(f"{owner}: size {path.stat().st_size} != recorded {size}")
    return problems
