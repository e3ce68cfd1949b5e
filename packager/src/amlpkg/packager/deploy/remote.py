"""``amlpkg deploy`` and ``deployments status|delete|rollback`` against a team server.

The target is acted on from this machine (its Docker engine, kube context, IoT hub,
its local supervisor), with the same code as on the embedded workspace: the commands
run :mod:`amlpkg.packager.deploy.api` in a cache workspace of this server
(``$XDG_CACHE_HOME/amlpkg/deploy/<server>``), which first takes the server's rows of
the deployment (ids kept, with their config and state). Model versions and packages
are read from the server (:class:`ServerSite`, files sha256 checked), and every row
the lifecycle writes goes to the server as it is written (:class:`ServerJournal`):
a new revision is recorded there before anything starts, and refused when someone
else recorded that number first. The server's newest pushed edge agent images are
mirrored too, so ``--target iotedge`` pins one without ``--agent-image``.

What runs on one machine only (a local deployment's supervisor, containers on a
Docker engine reached through its local socket) can be checked, changed or stopped
only from the machine that deployed it; elsewhere the commands say so.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from amlpkg.packager.build.records import Package
from amlpkg.packager.deploy import api, records
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.targets.base import Plan
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import ModelVersion
from amlpkg.trainer.remote import deployment_rows
from amlpkg.trainer.remote.backend import RemoteBackend
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server, is_loopback, server_cache_dir
from amlpkg.trainer.remote.edge_records import agent_images
from amlpkg.trainer.remote.model_files import download_version_file, require_contributor

if TYPE_CHECKING:
    from amlpkg.packager.deploy.oci_source import OciModel

_ORIGIN_FILE = "origin"
_LIVE = ("pending", "ready")
# The fields of a new revision, and those a revision moves on in, as the server takes them.
_CREATED = ("revision", "target", "model", "package", "image", "image_digest", "created_by")
_UPDATED = ("status", "reason", "state", "endpoint_http", "endpoint_grpc", "image_digest")
_STAGE = {"pending": 0, "ready": 1, "failed": 1, "stopped": 2}  # a revision only moves on


def _package(data: dict[str, Any]) -> Package:
    return Package(**{k: v for k, v in data.items() if k != "model_ref"})


class ServerSite:
    """Model versions (files cached in ``ws``, sha256 checked) and packages of a server."""

    def __init__(self, backend: RemoteBackend, ws: Workspace) -> None:
        self.backend = backend
        self.client = backend.client
        self.ws = ws

    def model_file(self, ref: str) -> tuple[ModelVersion, Path]:
        version = self.backend.get_model_version(ref)
        if not self.ws.artifacts.exists(version.sha256):
            with tempfile.TemporaryDirectory(prefix="amlpkg-deploy-") as scratch:
                dest = Path(scratch) / "model.onnx"
                download_version_file(
                    self.client, version.name, version.version, version.sha256, dest
                )
                self.ws.artifacts.put_file(dest)
        return version, self.ws.artifacts.verified_path(version.sha256)

    def package(self, package_id: str) -> Package:
        url = f"/packages/{quote(package_id, safe='')}"
        return _package(self.client.request("GET", url).json())

    def packages(self, model_name: str) -> list[Package]:
        found = self.client.request("GET", "/packages", params={"model": model_name}).json()
        return [_package(row) for row in found]

    def registered(self, model: OciModel) -> ModelVersion | None:
        try:
            version = self.backend.get_model_version(f"{model.name}:{model.version}")
        except (NotFoundError, InvalidArgumentError):
            return None
        return version if version.sha256 == model.sha256 else None


class ServerJournal:
    """Sends each deployment row written here to the server (:class:`records.Journal`)."""

    def __init__(self, client: TeamClient, origin: str) -> None:
        self.client = client
        self.origin = origin

    def created(self, record: DeploymentRecord) -> None:
        row = {key: getattr(record, key) for key in _CREATED}
        # Which cache workspace made it: what runs on one machine is reached from there.
        row["config"] = {**record.config, "origin": self.origin}
        deployment_rows.create_revision(self.client, record.name, row)

    def updated(self, record: DeploymentRecord) -> None:
        row = {key: getattr(record, key) for key in _UPDATED}
        deployment_rows.update_revision(self.client, record.name, record.revision, row)


def workspace_home(server: Server) -> Path:
    """This server's cache workspace: local deployments' state, model files, rows."""
    return server_cache_dir("deploy", server)


def _origin(ws: Workspace) -> str:
    """This cache workspace's id, made once (the first of two racing processes wins)."""
    path = ws.home / _ORIGIN_FILE
    if not path.is_file():
        with tempfile.NamedTemporaryFile("w", dir=ws.home, delete=False) as out:
            out.write(uuid.uuid4().hex + "\n")
        try:
            os.link(out.name, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(out.name)
    return path.read_text().strip()


def machine_bound(record: DeploymentRecord) -> bool:
    """Whether only the machine that deployed ``record`` reaches what runs for it."""
    if record.target == "local":
        return True
    if record.target == "docker":
        host = record.state.get("docker_host") or record.config.get("docker_host")
        return (
            not host
            or host.startswith(("unix://", "npipe://"))
            or is_loopback("http://" + str(host).split("://", 1)[-1])
        )
    return False


def _check_reachable(ws: Workspace, record: DeploymentRecord | None, command: str) -> None:
    """Refuse to act on a live revision that runs on another machine's local resources."""
    if record is None or record.status not in _LIVE or not machine_bound(record):
        return
    if record.config.get("origin") == _origin(ws):
        return
    what = "supervisor" if record.target == "local" else "Docker engine (its local socket)"
    raise FailedPreconditionError(
        f"deployment {record.name!r} ({record.id}, {record.target}) runs on the machine that"
        f" deployed it ({record.created_by}); its {what} cannot be reached from here",
        hint=f"run `amlpkg {command}` on that machine, or deploy under another --name here",
    )


def _caught_up(
    ws: Workspace, name: str, rows: list[dict[str, Any]], journal: ServerJournal
) -> list[DeploymentRecord]:
    """The server's rows, where one lags behind this machine's (a status change the server
    never got, e.g. it was away when the deploy ended) sent again and kept as here."""
    mine = {record.id: record for record in records.history(ws, name)}
    kept = []
    for row in rows:
        theirs, here = DeploymentRecord.from_dict(row), mine.get(str(row["id"]))
        if here is not None and _STAGE[here.status] > _STAGE[theirs.status]:
            journal.updated(here)
            theirs = DeploymentRecord.from_dict({**row, **here.to_dict(), "config": theirs.config})
        kept.append(theirs)
    return kept


@contextmanager
def _on_server(
    server: Server, name: str, command: str | None
) -> Iterator[tuple[Workspace, ServerSite]]:
    """This server's cache workspace holding its rows of ``name``; rows written go back.

    ``command`` (what the user typed) records changes: a reader token is refused first.
    """
    records.check_deployment_name(name)
    backend = RemoteBackend(server)
    try:
        if command is not None:
            require_contributor(backend.client, command)
        with open_workspace(workspace_home(server)) as ws:
            journal = ServerJournal(backend.client, _origin(ws))
            rows = deployment_rows.list_revisions(backend.client, name)
            records.mirror(ws, name, _caught_up(ws, name, rows, journal))
            with records.journal(journal):
                yield ws, ServerSite(backend, ws)
    finally:
        backend.close()


def _mirror_agent_images(client: TeamClient, ws: Workspace, target: str) -> None:
    """For ``--target iotedge``: the server's newest pushed edge agent images, in ``ws``."""
    from amlpkg.packager.build.agent_image import mirror_agent_images

    if target == "iotedge":
        mirror_agent_images(ws, agent_images(client))


def deploy(
    server: Server, source: str, *, target: str, name: str, options: api.Options | None = None
) -> DeploymentRecord:
    """:func:`api.deploy` of a server's model version or package, recorded on the server."""
    with _on_server(server, name, "amlpkg deploy") as (ws, site):
        _mirror_agent_images(site.client, ws, target)
        _check_reachable(ws, records.serving(ws, name), f"deploy ... --name {name}")
        return api.deploy(source, target=target, name=name, options=options, workspace=ws,
                          site=site)  # fmt: skip


def plan(
    server: Server, source: str, *, target: str, name: str, options: api.Options | None = None
) -> Plan:
    """:func:`api.plan` (``--dry-run``) of a server's model version or package."""
    backend = RemoteBackend(server)
    try:
        with open_workspace(workspace_home(server)) as ws:
            site = ServerSite(backend, ws)
            _mirror_agent_images(backend.client, ws, target)
            return api.plan(source, target=target, name=name, options=options, workspace=ws,
                            site=site)  # fmt: skip
    finally:
        backend.close()


def status(server: Server, name: str) -> dict[str, Any]:
    """:func:`api.status` of a deployment recorded on the server."""
    with _on_server(server, name, None) as (ws, _):  # the server refuses a reader itself
        _check_reachable(ws, records.serving(ws, name), f"deployments status {name}")
        return api.status(name, workspace=ws)


def delete(server: Server, name: str) -> DeploymentRecord:
    """:func:`api.delete` of a deployment recorded on the server; the server's row moves on."""
    with _on_server(server, name, f"amlpkg deployments delete {name}") as (ws, _):
        _check_reachable(ws, records.serving(ws, name), f"deployments delete {name}")
        return api.delete(name, workspace=ws)


def rollback(server: Server, name: str) -> DeploymentRecord:
    """:func:`api.rollback` of a deployment recorded on the server, as a new revision there."""
    with _on_server(server, name, f"amlpkg deployments rollback {name}") as (ws, site):
        _check_reachable(ws, records.serving(ws, name), f"deployments rollback {name}")
        _mirror_agent_images(site.client, ws, records.rollback_source(ws, name).target)
        return api.rollback(name, workspace=ws, site=site)
