"""Deployment rows: one per apply, linked into the lineage chain.

A deployment is named (``web``); every apply adds revision N, whose id
``NAME:N`` is also its lineage node (``("deployment", "web:3")``). Rows are only
ever added or have their status moved on, so the table is the history of what
ran where, and ``rollback`` can find the previous good revision.

A deploy against a team server runs here in a cache workspace holding the server's
rows of that name (:func:`mirror`); a :class:`Journal` set with :func:`journal`
sends every row written here on to the server as it is written.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from amlpkg.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.lineage_edges import add_edge_in_tx
from amlpkg.store.workspace import Workspace

DEPLOYMENT_KIND = "deployment"
PACKAGE_KIND = "package"
MODEL_VERSION_KIND = "model_version"
STATUSES = ("pending", "ready", "failed", "stopped")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_COLUMNS = (
    "id, name, revision, target, model, package, image, image_digest, endpoint_http,"
    " endpoint_grpc, config, state, status, reason, created, updated, created_by"
)


def check_deployment_name(name: str) -> str:
    """Refuse names that cannot be a Kubernetes object or IoT Edge module name."""
    if not _NAME.match(name):
        raise InvalidArgumentError(
            f"invalid deployment name {name!r}",
            hint="use 1-63 lowercase letters, digits and '-', starting and ending"
            " with a letter or digit (it names Kubernetes objects and edge modules)",
        )
    return name


def who() -> str:
    """``user@host`` of the person deploying."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class DeploymentRecord:
    """One revision of a named deployment."""

    id: str
    name: str
    revision: int
    target: str
    model: str | None
    package: str | None
    image: str | None
    image_digest: str | None
    endpoint_http: str | None
    endpoint_grpc: str | None
    config: dict[str, Any]
    state: dict[str, Any]
    status: str
    reason: str | None
    created: float
    updated: float
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``show --json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "revision": self.revision,
            "target": self.target,
            "model": self.model,
            "package": self.package,
            "image": self.image,
            "image_digest": self.image_digest,
            "endpoints": {"http": self.endpoint_http, "grpc": self.endpoint_grpc},
            "config": self.config,
            "state": self.state,
            "status": self.status,
            "reason": self.reason,
            "created": self.created,
            "updated": self.updated,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentRecord:
        """The record :meth:`to_dict` (or a team server's full row) describes."""
        values = {k: v for k, v in data.items() if k != "endpoints"}
        endpoints = data.get("endpoints") or {}
        http, grpc = endpoints.get("http"), endpoints.get("grpc")
        return cls(**values, endpoint_http=http, endpoint_grpc=grpc)


class Journal(Protocol):
    """Where rows written in this workspace also go (a team server), as they are written."""

    def created(self, record: DeploymentRecord) -> None:
        """Record a new revision there; raises (and nothing is kept here) if it is refused."""
        ...

    def updated(self, record: DeploymentRecord) -> None:
        """Move the revision on there as it moved here."""
        ...


_journal: ContextVar[Journal | None] = ContextVar("amlpkg_deployment_journal", default=None)


@contextmanager
def journal(target: Journal) -> Iterator[None]:
    """Send the rows :func:`create` and :func:`update` write to ``target`` too, inside."""
    token = _journal.set(target)
    try:
        yield
    finally:
        _journal.reset(token)


def _record(row: Any) -> DeploymentRecord:
    values = dict(row)
    values["config"] = json.loads(values["config"])
    values["state"] = json.loads(values["state"])
    return DeploymentRecord(**values)


def create(
    ws: Workspace,
    *,
    name: str,
    target: str,
    config: dict[str, Any],
    model: str | None = None,
    package: str | None = None,
    image: str | None = None,
    image_digest: str | None = None,
    revision: int | None = None,
    created_by: str | None = None,
) -> DeploymentRecord:
    """Add the next revision of ``name`` as ``pending`` with its lineage edges, atomically.

    ``revision`` is the number the caller expects it to get (a team server recording a
    revision made elsewhere): another one is refused (:class:`AlreadyExistsError`).
    """
    check_deployment_name(name)
    now = time.time()
    # Revisions of one name take turns (see write_tx), so each gets the next number.
    with write_tx(ws.conn, lock=f"deployment:{name}") as conn:
        after = int(
            conn.execute(
                "SELECT COALESCE(MAX(revision), 0) FROM deployments WHERE name = ?", (name,)
            ).fetchone()[0]
        )
        if revision is not None and revision != after + 1:
            raise AlreadyExistsError(
                f"deployment {name!r} is at revision {after}, so {name}:{revision} cannot"
                " be recorded",
                hint="someone else changed the deployment meanwhile: try again",
            )
        record = DeploymentRecord(
            id=f"{name}:{after + 1}", name=name, revision=after + 1, target=target,
            model=model, package=package, image=image, image_digest=image_digest,
            endpoint_http=None, endpoint_grpc=None, config=config, state={},
            status="pending", reason=None, created=now, updated=now,
            created_by=created_by or who(),
        )  # fmt: skip
        _insert(conn, record)
        node = (DEPLOYMENT_KIND, record.id)
        if model is not None:
            add_edge_in_tx(conn, (MODEL_VERSION_KIND, model), node, "deployed_as")
        if package is not None:
            add_edge_in_tx(conn, (PACKAGE_KIND, package), node, "deployed_as")
        sink = _journal.get()
        if sink is not None:  # inside the transaction: a refused revision is not kept here
            sink.created(record)
    return get(ws, record.id)


def _insert(conn: Any, record: DeploymentRecord) -> None:
    conn.execute(
        f"INSERT INTO deployments ({_COLUMNS}) VALUES ({', '.join('?' * 17)})",
        (
            record.id, record.name, record.revision, record.target, record.model,
            record.package, record.image, record.image_digest, record.endpoint_http,
            record.endpoint_grpc, json.dumps(record.config, sort_keys=True),
            json.dumps(record.state, sort_keys=True), record.status, record.reason,
            record.created, record.updated, record.created_by,
        ),
    )  # fmt: skip


def mirror(ws: Workspace, name: str, rows: list[DeploymentRecord]) -> None:
    """Make ``rows`` (a team server's, ids kept) the history of ``name`` here."""
    with write_tx(ws.conn, lock=f"deployment:{check_deployment_name(name)}") as conn:
        conn.execute("DELETE FROM deployments WHERE name = ?", (name,))
        for record in rows:
            _insert(conn, record)


def update(
    ws: Workspace,
    dep_id: str,
    *,
    status: str | None = None,
    reason: str | None = None,
    state: dict[str, Any] | None = None,
    endpoint_http: str | None = None,
    endpoint_grpc: str | None = None,
    image_digest: str | None = None,
) -> DeploymentRecord:
    """Move a revision on: only the given fields change (``reason`` is set with ``status``)."""
    if status is not None and status not in STATUSES:
        raise InvalidArgumentError(f"unknown deployment status {status!r}")
    sets: list[str] = ["updated = ?"]
    values: list[Any] = [time.time()]
    if status is not None:
        sets += ["status = ?", "reason = ?"]
        values += [status, reason]
    for column, value in (
        ("endpoint_http", endpoint_http),
        ("endpoint_grpc", endpoint_grpc),
        ("image_digest", image_digest),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            values.append(value)
    if state is not None:
        sets.append("state = ?")
        values.append(json.dumps(state, sort_keys=True))
    with write_tx(ws.conn) as conn:
        conn.execute(f"UPDATE deployments SET {', '.join(sets)} WHERE id = ?", (*values, dep_id))
    record = get(ws, dep_id)
    sink = _journal.get()
    if sink is not None:
        sink.updated(record)
    return record


def get(ws: Workspace, ref: str) -> DeploymentRecord:
    """``NAME:REVISION``, or ``NAME`` for its latest revision."""
    if ":" in ref:
        row = ws.conn.execute(f"SELECT {_COLUMNS} FROM deployments WHERE id = ?", (ref,)).fetchone()
    else:
        row = ws.conn.execute(
            f"SELECT {_COLUMNS} FROM deployments WHERE name = ? ORDER BY revision DESC LIMIT 1",
            (ref,),
        ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no deployment {ref!r}", hint="see `amlpkg deployments list` for the names"
        )
    return _record(row)


def history(ws: Workspace, name: str) -> list[DeploymentRecord]:
    """Every revision of ``name``, newest first."""
    rows = ws.conn.execute(
        f"SELECT {_COLUMNS} FROM deployments WHERE name = ? ORDER BY revision DESC", (name,)
    ).fetchall()
    return [_record(row) for row in rows]


def latest_per_name(ws: Workspace) -> list[DeploymentRecord]:
    """The newest revision of every deployment, by name."""
    rows = ws.conn.execute(
        f"SELECT {_COLUMNS} FROM deployments d WHERE revision ="
        " (SELECT MAX(revision) FROM deployments WHERE name = d.name) ORDER BY name"
    ).fetchall()
    return [_record(row) for row in rows]


def serving(ws: Workspace, name: str) -> DeploymentRecord | None:
    """The revision of ``name`` that serves now: the newest ``ready`` one."""
    for record in history(ws, name):
        if record.status == "ready":
            return record
    return None


def rollback_source(ws: Workspace, name: str) -> DeploymentRecord:
    """The revision ``rollback`` returns to: the last good one before the serving one."""
    current = serving(ws, name)
    if current is None:
        raise NotFoundError(
            f"deployment {name!r} has no serving revision to roll back from",
            hint="deploy it first; rollback returns to the revision before the serving one",
        )
    for record in history(ws, name):
        # Only a revision that passed its smoke test once is worth returning to.
        if record.revision < current.revision and record.state.get("verified"):
            return record
    raise NotFoundError(
        f"deployment {name!r} has no earlier good revision than {current.id}",
        hint="see `amlpkg deployments show NAME` for its history",
    )


def describe_deployment_edges(ws: Workspace, edges: list[dict[str, Any]]) -> None:
    """Set ``edge["detail"]`` on edges into a deployment: target, status, endpoint, image."""
    for edge in edges:
        if edge.get("dst_kind") != DEPLOYMENT_KIND:
            continue
        row = ws.conn.execute(
            f"SELECT {_COLUMNS} FROM deployments WHERE id = ?", (edge["dst_id"],)
        ).fetchone()
        if row is None:
            continue
        record = _record(row)
        facts = [f"{record.target}, {record.status}"]  # no [..]: Rich reads it as markup
        if record.endpoint_http:
            facts.append(f"http {record.endpoint_http} grpc {record.endpoint_grpc}")
        if record.image_digest or record.image:
            facts.append(f"image {record.image_digest or record.image}")
        facts.append(f"by {record.created_by}")
        edge["detail"] = ", ".join(facts)
