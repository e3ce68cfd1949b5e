"""The model registry: named, auto-versioned ONNX models with aliases.

Registration validates the ONNX file, reads its signature, stores the file in
the content-addressed store (fsync + rename) and only then inserts the version
row, tags, aliases and lineage edge in one write transaction on one connection
(``BEGIN IMMEDIATE`` on SQLite, a per-model advisory lock on PostgreSQL). The
version number is picked inside that transaction, so concurrent processes get
distinct, consecutive versions, and a kill at any moment leaves either a complete
version or none (at worst an unreferenced blob, never a row without its file).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.refs import ModelRef, check_alias, check_name, parse_model_ref
from amlpkg.trainer.signature import inspect_onnx
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs

RUNS_SCHEME = "runs:/"
MODEL_VERSION_KIND = "model_version"  # lineage node id: "NAME:VERSION"
RUN_KIND = "run"  # lineage node id: the run id
_FULL_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    sha256: str
    size: int
    opset: int | None
    signature: dict[str, Any]
    run_id: str | None
    source: str
    description: str | None
    created: float
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``NAME:VERSION``, also its lineage node id."""
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "sha256": self.sha256,
            "size": self.size,
            "opset": self.opset,
            "signature": self.signature,
            "run_id": self.run_id,
            "source": self.source,
            "description": self.description,
            "created": self.created,
            "tags": self.tags,
            "aliases": self.aliases,
        }


@contextmanager
def using_workspace(workspace: Workspace | None, home: str | Path | None) -> Iterator[Workspace]:
    """``workspace`` as is, or one opened at ``home`` (and closed afterwards)."""
    if workspace is not None:
        yield workspace
        return
    with open_workspace(home) as ws:
        yield ws


def _parse_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key.strip() or len(key) > 250:
            raise InvalidArgumentError(f"invalid tag key {key!r}", hint="use a non-empty key")
        result[key] = str(value)
    return result


def _stored_source(ws: Workspace, uri: str, run: str | None) -> tuple[Path, str]:
    """``(verified blob, run id)`` of the artifact a ``runs:/RUN/PATH`` URI names."""
    run_ref, _, artifact = uri[len(RUNS_SCHEME) :].partition("/")
    if not run_ref or not artifact:
        raise InvalidArgumentError(
            f"invalid run artifact URI {uri!r}", hint="use runs:/<run_id>/<artifact path>"
        )
    # A full run id that has the artifact: one lookup (the other cases, and their errors,
    # go through the run's resolution first).
    found = None
    if _FULL_RUN_ID.match(run_ref):
        found = ws.conn.execute(
            "SELECT sha256 FROM artifacts WHERE run_id = ? AND path = ?", (run_ref, artifact)
        ).fetchone()
    uri_run = run_ref if found else queries.resolve_run_id(ws, run_ref)
    if run is not None and queries.resolve_run_id(ws, run) != uri_run:
        raise InvalidArgumentError(f"--run {run} contradicts the run in {uri}")
    digest = str(found[0]) if found else store_runs.get_artifact(ws, uri_run, artifact)[0]
    return ws.artifacts.verified_path(digest), uri_run


@dataclass(frozen=True)
class _Content:
    """What a version records of its file: digest, size, signature, opset, where from."""

    sha256: str
    size: int
    signature: dict[str, Any]
    opset: int | None
    run_id: str | None
    source: str


InTransaction = Callable[[ModelVersion], None]


def register(
    name: str,
    source: str | Path,
    run: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    *,
    aliases: Sequence[str] = (),
    in_transaction: InTransaction | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
) -> ModelVersion:
    """Register the ONNX file ``source`` (a path or ``runs:/<run>/<path>``) as a new version.

    ``run`` links the version to the run that made it (implied by a runs:/ URI);
    ``aliases`` point at the new version. Invalid names, missing files and invalid
    ONNX are refused before anything is stored. Every row (version, tags, aliases,
    lineage edge) goes in one transaction on one connection, and ``in_transaction``
    (the server's audit row) runs in it last: a failure anywhere leaves none of them.
    """
    check_name(name)
    clean_tags = _parse_tags(tags)
    for alias in aliases:
        check_alias(alias)
    with using_workspace(workspace, home) as ws:
        text = str(source)
        if text.startswith(RUNS_SCHEME):
            # Already stored: looking it up and checking it share the transaction.
            with write_tx(ws.conn, lock=_lock(name)):
                blob, uri_run = _stored_source(ws, text, run)
                signature, opset = inspect_onnx(blob)  # digest verified on the way
                artifact = text[len(RUNS_SCHEME) :].partition("/")[2]
                content = _Content(
                    blob.name, blob.stat().st_size, signature, opset,
                    uri_run, f"{RUNS_SCHEME}{uri_run}/{artifact}",
                )  # fmt: skip
                return _insert(ws, name, content, description, clean_tags, aliases, in_transaction)
        path = Path(source).expanduser()
        if not path.exists():
            raise NotFoundError(f"model file {path} does not exist", hint="check the path")
        # Validate the very bytes that get stored; an invalid file leaves nothing behind.
        with ws.artifacts.staged_file(path) as staged:
            signature, opset = inspect_onnx(staged.path, shown_as=path)
        with write_tx(ws.conn, lock=_lock(name)):
            run_id = queries.resolve_run_id(ws, run) if run is not None else None
            content = _Content(
                staged.sha256, staged.size, signature, opset, run_id, str(path.resolve())
            )
            return _insert(ws, name, content, description, clean_tags, aliases, in_transaction)


def register_stored(
    name: str,
    sha256: str,
    *,
    source: str,
    run: str | None = None,
    description: str | None = None,
    aliases: Sequence[str] = (),
    in_transaction: InTransaction | None = None,
    workspace: Workspace,
) -> ModelVersion:
    """Register the blob ``sha256`` already in the artifact store (a file the client sent
    straight to the bucket, checked there) as the next version; ``source`` is what it
    records as the file's origin. Like :func:`register`, in one transaction."""
    check_name(name)
    for alias in aliases:
        check_alias(alias)
    ws = workspace
    with write_tx(ws.conn, lock=_lock(name)):
        run_id = queries.resolve_run_id(ws, run) if run is not None else None
        blob = ws.artifacts.verified_path(sha256)
        signature, opset = inspect_onnx(blob, shown_as=Path(source))
        content = _Content(sha256, blob.stat().st_size, signature, opset, run_id, source)
        return _insert(ws, name, content, description, {}, aliases, in_transaction)


def _lock(name: str) -> str:
    # Concurrent registrations of one model (other processes, other server replicas)
    # take turns, so each reads the version the previous one wrote.
    return f"model:{name}"


def _insert(  # noqa: PLR0917 - a version's parts, in one private call
    ws: Workspace,
    name: str,
    content: _Content,
    description: str | None,
    tags: dict[str, str],
    aliases: Sequence[str],
    in_transaction: InTransaction | None,
) -> ModelVersion:
    """The version's rows, in the caller's transaction; the version as it now reads."""
    now = time.time()
    conn = ws.conn
    model_row = "INSERT INTO models (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING"
    first = ""
    if conn.dialect == "postgresql":
        first = f"WITH model AS ({model_row}) "  # one round trip for both rows
    else:
        conn.execute(model_row, (name, now))
    signature = json.dumps(content.signature, sort_keys=True)
    # The next number and the row in one statement; the lock keeps the number unique.
    number = conn.execute(
        f"{first}INSERT INTO model_versions (name, version, sha256, size, opset, signature,"
        " run_id, source, description, created)"
        " SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?"
        " FROM model_versions WHERE name = ? RETURNING version",
        ((name, now) if first else ()) + (name, content.sha256, content.size, content.opset,
         signature, content.run_id, content.source, description, now, name),
    ).scalar()  # fmt: skip
    version = ModelVersion(
        name=name,
        version=int(number),
        sha256=content.sha256,
        size=content.size,
        opset=content.opset,
        signature=json.loads(signature),
        run_id=content.run_id,
        source=content.source,
        description=description,
        created=now,
        tags=dict(sorted(tags.items())),
        aliases=sorted(set(aliases)),
    )
    conn.executemany(
        "INSERT INTO model_tags (name, version, key, value) VALUES (?, ?, ?, ?)",
        [(name, version.version, k, v) for k, v in tags.items()],
    )
    conn.executemany(_SET_ALIAS, [(name, a, version.version, now) for a in version.aliases])
    if content.run_id is not None:
        add_edge_in_tx(
            conn, (RUN_KIND, content.run_id), (MODEL_VERSION_KIND, version.ref), "produced"
        )
    if in_transaction is not None:
        in_transaction(version)
    return version


_SET_ALIAS = (
    "INSERT INTO aliases (name, alias, version, updated) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version,"
    " updated = excluded.updated"
)


def _load(ws: Workspace, name: str, version: int) -> ModelVersion:
    row = ws.conn.execute(
        "SELECT * FROM model_versions WHERE name = ? AND version = ?", (name, version)
    ).fetchone()
    if row is None:
        raise NotFoundError(
            f"model {name!r} has no version {version}", hint=f"amlpkg models show {name}"
        )
    tags = dict(
        ws.conn.execute(
            "SELECT key, value FROM model_tags WHERE name = ? AND version = ? ORDER BY key",
            (name, version),
        ).fetchall()
    )
    aliases = [
        r[0]
        for r in ws.conn.execute(
            "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias",
            (name, version),
        )
    ]
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        sha256=row["sha256"],
        size=int(row["size"]),
        opset=row["opset"],
        signature=json.loads(row["signature"]),
        run_id=row["run_id"],
        source=row["source"],
        description=row["description"],
        created=float(row["created"]),
        tags=tags,
        aliases=aliases,
    )


def _version_of(ws: Workspace, ref: ModelRef) -> int:
    if ref.version is not None:
        return ref.version
    if ref.alias is not None:
        row = ws.conn.execute(
            "SELECT version FROM aliases WHERE name = ? AND alias = ?", (ref.name, ref.alias)
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"model {ref.name!r} has no alias {ref.alias!r}",
                hint=f"set it: amlpkg models alias {ref.name} VERSION {ref.alias}",
            )
        return int(row[0])
    row = ws.conn.execute(
        "SELECT MAX(version) FROM model_versions WHERE name = ?", (ref.name,)
    ).fetchone()
    if row[0] is None:
        raise NotFoundError(f"no model named {ref.name!r}", hint="list models: amlpkg models list")
    return int(row[0])


def get_model_version(
    ref: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> ModelVersion:
    """The version ``NAME`` (latest), ``NAME:VERSION`` or ``NAME@ALIAS`` refers to."""
    parsed = parse_model_ref(ref)
    with using_workspace(workspace, home) as ws:
        return _load(ws, parsed.name, _version_of(ws, parsed))


def resolve_model_file(
    ref: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> tuple[ModelVersion, Path]:
    """The version ``ref`` names and the path of its stored ONNX file, digest verified.

    The file is read-only and shared by the store: copy it before changing it.
    """
    with using_workspace(workspace, home) as ws:
        version = get_model_version(ref, workspace=ws)
        return version, ws.artifacts.verified_path(version.sha256)


def list_versions(
    name: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> list[ModelVersion]:
    """Every version of ``name``, newest first."""
    check_name(name)
    with using_workspace(workspace, home) as ws:
        rows = ws.conn.execute(
            "SELECT version FROM model_versions WHERE name = ? ORDER BY version DESC", (name,)
        ).fetchall()
        if not rows:
            raise NotFoundError(f"no model named {name!r}", hint="list models: amlpkg models list")
        return [_load(ws, name, int(r[0])) for r in rows]


def list_models(
    *, home: str | Path | None = None, workspace: Workspace | None = None
) -> list[dict[str, Any]]:
    """One summary per model: name, latest version, version count, aliases."""
    with using_workspace(workspace, home) as ws:
        rows = ws.conn.execute(
            "SELECT m.name, m.created, MAX(v.version) AS latest, COUNT(v.version) AS versions"
            " FROM models m JOIN model_versions v ON v.name = m.name"
            " GROUP BY m.name ORDER BY m.name"
        ).fetchall()
        result = []
        for row in rows:
            aliases = {
                a: int(v)
                for a, v in ws.conn.execute(
                    "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias",
                    (row["name"],),
                )
            }
            result.append(
                {
                    "name": row["name"],
                    "latest_version": int(row["latest"]),
                    "versions": int(row["versions"]),
                    "aliases": aliases,
                    "created": float(row["created"]),
                }
            )
        return result


def set_alias(
    name: str,
    version: int,
    alias: str,
    *,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
) -> ModelVersion:
    """Point ``NAME@ALIAS`` at ``version`` (moving it if it pointed elsewhere)."""
    check_name(name)
    check_alias(alias)
    with using_workspace(workspace, home) as ws:
        _load(ws, name, int(version))  # raises NotFoundError for an unknown version
        with write_tx(ws.conn) as conn:
            conn.execute(_SET_ALIAS, (name, alias, int(version), time.time()))
        return _load(ws, name, int(version))
