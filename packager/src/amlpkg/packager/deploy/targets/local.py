"""``--target local``: the runtime as supervised processes behind a stable endpoint, no Docker.

Per deployment name one supervisor process holds the stable HTTP and gRPC ports
(a switching proxy) and runs one runtime process per live revision on private
loopback ports. A new revision starts beside the serving one, is verified
directly (readiness + smoke inference), only then receives traffic, and the old
one is stopped once it has answered what it got: blue/green with one URL.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, ClassVar

from amlpkg.errors import AmlpkgError
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy import supervisor_client as sv
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
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan
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


class LocalTarget:
    """Runs on this machine; see the module docstring."""

    name: ClassVar[str] = "local"

    def plan(self, ws: Workspace, request: DeployRequest) -> Plan:
        """The steps of a local deploy (nothing is started)."""
        folder = state_dir(ws, request.name)
        return Plan(
            target=self.name,
            steps=[
                f"materialize a model repository for {request.source.text} under {folder}",
                "start (or reuse) the supervisor holding the stable endpoint"
                f" on {request.option('host', '127.0.0.1')}",
                "start the new revision on private ports, wait for /v2/health/ready",
                "smoke inference over HTTP and gRPC from the model signature",
                "switch the endpoint, stop the previous revision once drained",
            ],
        )

    def apply(self, ws: Workspace, request: DeployRequest) -> DeploymentRecord:
        """Start, verify and switch to a new revision; a failure leaves the old one serving."""
        source = request.source
        record = records.create(
            ws,
            name=request.name,
            target=self.name,
            config=request.config(),
            model=None if source.model is None else source.model.ref,
            package=source.package,
        )
        folder = state_dir(ws, request.name)
        key = record.id
        try:
            repo, model_name, signature = materialize_repository(
                source, folder / f"r{record.revision}", request.options.get("runtime_config")
            )
            previous = records.serving(ws, request.name)
            front = front_ports(request, previous)
            info = sv.ensure_supervisor(folder, **front)
            log = folder / f"r{record.revision}.log"
            ports = {"http_port": _free_port(), "grpc_port": _free_port()}
            env = telemetry_env(request.option("telemetry_endpoint"), key)
            sv.call(folder, "start", key=key, repository=str(repo), log=str(log), env=env, **ports)
            backend_http = f"http://127.0.0.1:{ports['http_port']}"
            try:
                wait_ready(
                    backend_http,
                    timeout_s=float(request.option("ready_timeout_s", 60.0)),
                    alive=lambda: _dead_reason(folder, key, log),
                )
                smoke_http(backend_http, model_name, signature)
                smoke_grpc(f"127.0.0.1:{ports['grpc_port']}", model_name, signature)
            except AmlpkgError as exc:
                sv.call(folder, "stop", key=key, grace_s=0.0)
                raise SmokeTestError(
                    f"{exc.message} (log: {sv.log_tail(log, 3)})", hint=exc.hint
                ) from exc
            sv.call(folder, "switch", key=key)
            http_url, grpc_addr = endpoints_of(info)
            smoke_http(http_url, model_name, signature)  # through the stable endpoint too
        except AmlpkgError as exc:
            records.update(ws, key, status="failed", reason=exc.message)
            serving = records.serving(ws, request.name)
            if serving is not None:
                exc.hint = f"{serving.id} keeps serving at {serving.endpoint_http}" + (
                    f"; {exc.hint}" if exc.hint else ""
                )
            raise
        grace = float(request.option("drain_grace_s", 10.0))
        for old in sv.call(folder, "status")["backends"]:
            if old != key:
                sv.call(folder, "stop", key=old, grace_s=grace, timeout_s=grace + 60.0)
                records.update(ws, old, status="stopped", reason=f"replaced by {key}")
        status = sv.call(folder, "status")
        return records.update(
            ws,
            key,
            status="ready",
            endpoint_http=http_url,
            endpoint_grpc=grpc_addr,
            state={
                "verified": True,
                "model_name": model_name,
                "repository": str(repo),
                "log": str(log),
                "supervisor_pid": status["pid"],
                "pid": status["backends"][key]["pid"],
                "backend_ports": ports,
                "front": {"host": info["host"], **{k: info[k] for k in ports}},
            },
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


def front_ports(request: DeployRequest, previous: DeploymentRecord | None) -> dict[str, Any]:
    """Stable ports: as asked, else those the deployment had, else picked by the OS."""
    front = (previous.state.get("front") if previous else None) or {}
    return {
        "host": request.option("host", front.get("host", "127.0.0.1")),
        "http_port": int(request.option("port", front.get("http_port", 0))),
        "grpc_port": int(request.option("grpc_port", front.get("grpc_port", 0))),
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
