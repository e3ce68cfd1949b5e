"""``--target local``: the runtime as supervised processes behind a stable endpoint, no Docker.

Per deployment name one supervisor process holds the stable HTTP and gRPC ports
(a switching proxy) and runs one runtime process per live revision on private
loopback ports. A new revision starts beside the serving one, is verified
directly (readiness + smoke inference), only then receives traffic, and the old
one is stopped once it has answered what it got: blue/green with one URL.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, ClassVar

from amlpkg.errors import AmlpkgError, InternalError
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy import supervisor_client as sv
from amlpkg.packager.deploy.lifecycle import Lifecycle
from amlpkg.packager.deploy.options import DeployOptions, FrontOptions, LocalOptions
from amlpkg.packager.deploy.otel import telemetry_env
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.smoke import (
    SmokeTestError,
    is_ready,
    smoke_grpc,
    smoke_http,
    wait_ready,
)
from amlpkg.packager.deploy.sources import materialize_repository
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Prepared, Revision
from amlpkg.store.workspace import Workspace


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def state_dir(ws: Workspace, name: str) -> Path:
    """Where a local deployment keeps its supervisor files, repositories and logs."""
    return ws.home / "deployments" / name


def endpoints_of(info: dict[str, Any]) -> tuple[str, str]:
    """The stable endpoint URLs of a supervisor (HTTP URL, gRPC address)."""
    host = "127.0.0.1" if info["host"] in ("0.0.0.0", "::", "") else info["host"]
    return f"http://{host}:{info['http_port']}", f"{host}:{info['grpc_port']}"


class LocalTarget(Lifecycle):
    """Runs on this machine; see the module docstring."""

    name: ClassVar[str] = "local"
    options_model: ClassVar[type[DeployOptions]] = LocalOptions

    def plan(self, ws: Workspace, request: DeployRequest[LocalOptions]) -> Plan:
        """The steps of a local deploy (nothing is started)."""
        folder = state_dir(ws, request.name)
        return Plan(
            target=self.name,
            steps=[
                f"materialize a model repository for {request.source.text} under {folder}",
                "start (or reuse) the supervisor holding the stable endpoint"
                f" on {request.options.host or '127.0.0.1'}",
                "start the new revision on private ports, wait for /v2/health/ready",
                "smoke inference over HTTP and gRPC from the model signature",
                "switch the endpoint, stop the previous revision once drained",
            ],
        )

    def prepare(self, ws: Workspace, request: DeployRequest[LocalOptions]) -> Prepared:
        """Nothing to check beyond the source: the record names its model or package."""
        source = request.source
        model = None if source.model is None else source.model.ref
        return Prepared(model=model, package=source.package)

    def start(self, ws: Workspace, rev: Revision[LocalOptions]) -> None:
        """Start the revision on private ports under the supervisor; verify it directly."""
        opts, key = rev.request.options, rev.id
        folder = state_dir(ws, rev.request.name)
        repo, model_name, signature = materialize_repository(
            rev.request.source, folder / f"r{rev.record.revision}", opts.runtime_config
        )
        info = sv.ensure_supervisor(folder, **front_ports(opts, rev.previous))
        log = folder / f"r{rev.record.revision}.log"
        ports = {"http_port": _free_port(), "grpc_port": _free_port()}
        env = telemetry_env(opts.telemetry_endpoint, key, token_file=opts.telemetry_token_file)
        rev.live.update(folder=folder, info=info, model_name=model_name, signature=signature)
        sv.call(folder, "start", key=key, repository=str(repo), log=str(log), env=env, **ports)
        rev.live["started"] = True
        backend_http = f"http://127.0.0.1:{ports['http_port']}"
        try:
            wait_ready(
                backend_http,
                timeout_s=opts.ready_timeout_s,
                alive=lambda: _dead_reason(folder, key, log),
            )
            smoke_http(backend_http, model_name, signature)
            smoke_grpc(f"127.0.0.1:{ports['grpc_port']}", model_name, signature)
        except AmlpkgError as exc:
            raise SmokeTestError(
                f"{exc.message} (log: {sv.log_tail(log, 3)})", hint=exc.hint
            ) from exc
        rev.state.update(
            model_name=model_name,
            repository=str(repo),
            log=str(log),
            backend_ports=ports,
            front={"host": info["host"], **{k: info[k] for k in ports}},
        )

    def switch(self, ws: Workspace, rev: Revision[LocalOptions]) -> None:
        """Point the stable endpoint at the revision and score through it once."""
        folder, info = rev.live["folder"], rev.live["info"]
        sv.call(folder, "switch", key=rev.id)
        rev.switched = True
        rev.endpoint_http, rev.endpoint_grpc = endpoints_of(info)
        smoke_http(rev.endpoint_http, rev.live["model_name"], rev.live["signature"])
        status = sv.call(folder, "status")
        rev.state.update(supervisor_pid=status["pid"], pid=status["backends"][rev.id]["pid"])

    def retire(self, ws: Workspace, rev: Revision[LocalOptions], old: DeploymentRecord) -> None:
        """Stop the replaced revision once it answered what it got (drain grace)."""
        grace = rev.request.options.drain_grace_s
        folder = state_dir(ws, rev.request.name)
        sv.call(folder, "stop", key=old.id, grace_s=grace, timeout_s=grace + 60.0)

    def abort(self, ws: Workspace, rev: Revision[LocalOptions]) -> None:
        """Switch back to the previous revision if traffic moved; stop the new process."""
        folder = rev.live.get("folder")
        if folder is None:
            return
        if rev.switched and rev.previous is not None:
            with contextlib.suppress(AmlpkgError):
                sv.call(folder, "switch", key=rev.previous.id)
        if rev.live.get("started"):
            sv.call(folder, "stop", key=rev.id, grace_s=0.0)

    def wrap(self, exc: Exception) -> AmlpkgError:
        """Foreign errors here are the OS's or ours: say which, where to look."""
        return InternalError(
            f"the local deploy failed: {type(exc).__name__}: {exc}",
            hint="see the revision's log under the workspace's deployments/ folder",
        )

    def status(self, ws: Workspace, record: DeploymentRecord) -> dict[str, Any]:
        """Supervisor and process state, and whether the stable endpoint answers ready."""
        folder = state_dir(ws, record.name)
        live: dict[str, Any] = {"supervisor": False, "serving": None, "ready": False}
        if sv.control_info(folder) is not None:
            status = sv.call(folder, "status")
            live.update(supervisor=True, serving=status["current"], backends=status["backends"])
        live["ready"] = is_ready(record.endpoint_http)
        return live

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Stop the supervisor and every revision of the deployment."""
        folder = state_dir(ws, record.name)
        sv.shutdown(folder, grace_s=float(record.config.get("drain_grace_s", 5.0)))
        serving = records.serving(ws, record.name)
        if serving is not None:
            return records.update(ws, serving.id, status="stopped", reason="deleted")
        return record


def front_ports(opts: FrontOptions, previous: DeploymentRecord | None) -> dict[str, Any]:
    """Stable ports: as asked, else those the deployment had, else picked by the OS."""
    front = (previous.state.get("front") if previous else None) or {}

    def pick(given: Any, key: str, default: Any) -> Any:
        return given if given is not None else front.get(key, default)

    return {
        "host": pick(opts.host, "host", "127.0.0.1"),
        "http_port": int(pick(opts.port, "http_port", 0)),
        "grpc_port": int(pick(opts.grpc_port, "grpc_port", 0)),
    }


def _dead_reason(folder: Path, key: str, log: Path) -> str | None:
    """Why the revision's process is gone (None while it runs)."""
    try:
        backend = sv.call(folder, "status")["backends"].get(key)
    except AmlpkgError as exc:
        return exc.message
    # A restart during verification means it crashed: no point waiting for readiness.
    if backend is None or (backend["alive"] and backend["restarts"] == 0):
        return None
    return f"exit code {backend['returncode']}: {sv.log_tail(log, 3)}"
