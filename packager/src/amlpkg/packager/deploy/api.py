"""The deployment library the CLI delegates to: deploy, status, delete, rollback."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.packager.deploy import lifecycle, records
from amlpkg.packager.deploy import options as deploy_options
from amlpkg.packager.deploy.options import TARGETS, DeployOptions
from amlpkg.packager.deploy.records import DeploymentRecord, check_deployment_name
from amlpkg.packager.deploy.sources import SourceSite, resolve_source
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Target
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import using_workspace

Options = dict[str, Any] | DeployOptions
"""Deploy options: the target's typed model, or a mapping validated into it."""

__all__ = [
    "TARGETS",
    "Options",
    "delete",
    "deploy",
    "get_target",
    "list_deployments",
    "plan",
    "rollback",
    "show",
    "status",
]


def get_target(name: str) -> Target[Any]:
    """The target called ``name`` (imported on demand: each pulls in its own client)."""
    if name == "local":
        from amlpkg.packager.deploy.targets.local import LocalTarget

        return LocalTarget()
    if name == "docker":
        from amlpkg.packager.deploy.targets.docker import DockerTarget

        return DockerTarget()
    if name == "kubernetes":
        from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget

        return KubernetesTarget()
    if name == "iotedge":
        from amlpkg.packager.deploy.targets.iotedge import IotEdgeTarget

        return IotEdgeTarget()
    raise InvalidArgumentError(
        f"unknown deployment target {name!r}", hint=f"use one of: {', '.join(TARGETS)}"
    )


@contextmanager
def name_lock(ws: Workspace, name: str) -> Iterator[None]:
    """Serialize deploy/rollback/delete of one deployment name across processes.

    Blue/green needs one change at a time: two deploys racing would each start a
    revision and switch the endpoint in an order neither verified.
    """
    check_deployment_name(name)  # it becomes part of a file name
    folder = ws.home / "deployments"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _request(
    ws: Workspace,
    target: str,
    source: str,
    name: str,
    options: Options | None,
    *,
    site: SourceSite | None,
) -> DeployRequest[Any]:
    check_deployment_name(name)
    opts = deploy_options.parse(target, options)  # validated once, here
    source_ = resolve_source(ws, source, image=opts.image, trust=opts.trust, site=site)
    return DeployRequest(name, source_, opts)


def plan(
    source: str,
    *,
    target: str,
    name: str,
    options: Options | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    site: SourceSite | None = None,
) -> Plan:
    """What ``deploy`` would do (``--dry-run``): steps and documents, no side effects."""
    impl = get_target(target)
    with using_workspace(workspace, home) as ws:
        return impl.plan(ws, _request(ws, target, source, name, options, site=site))


def deploy(
    source: str,
    *,
    target: str,
    name: str,
    options: Options | None = None,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    site: SourceSite | None = None,
) -> DeploymentRecord:
    """Deploy ``source`` (model ref or package folder) as a new revision of ``name``.

    ``options`` are the target's (``options.LocalOptions``, ``DockerOptions``, ...), or
    a mapping of them. Every deploy is recorded and verified; a failed one (any
    exception) is recorded ``failed`` with its reason and raises an amlpkg error,
    leaving the previous revision serving (``lifecycle.apply``). ``site`` is where
    model versions and packages are read (default: the workspace).
    """
    impl = get_target(target)
    check_deployment_name(name)
    with using_workspace(workspace, home) as ws, name_lock(ws, name):
        current = records.serving(ws, name)
        if current is not None and current.target != target:
            raise InvalidArgumentError(
                f"deployment {name!r} runs on {current.target}, not {target}",
                hint="pick another --name, or delete the deployment first",
            )
        return lifecycle.apply(ws, impl, _request(ws, target, source, name, options, site=site))


def rollback(
    name: str,
    *,
    home: str | Path | None = None,
    workspace: Workspace | None = None,
    site: SourceSite | None = None,
) -> DeploymentRecord:
    """Deploy again what the revision before the serving one ran (a new revision)."""
    with using_workspace(workspace, home) as ws:
        with name_lock(ws, name):
            previous = records.rollback_source(ws, name)
        # Only what the target still takes: records written by older versions may
        # hold options that other targets use.
        known = deploy_options.model_for(previous.target).model_fields
        options = {k: v for k, v in previous.config.items() if k in known}
        options["rollback_of"] = previous.id
        return deploy(
            previous.config["source"],
            target=previous.target,
            name=name,
            options=options,
            workspace=ws,
            site=site,
        )


def list_deployments(
    *, home: str | Path | None = None, workspace: Workspace | None = None
) -> list[DeploymentRecord]:
    """Every deployment with its newest revision, by name (``deployments list``)."""
    with using_workspace(workspace, home) as ws:
        return records.latest_per_name(ws)


def show(
    name: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> dict[str, Any]:
    """The serving revision, its endpoints and every revision, newest first (JSON-ready)."""
    with using_workspace(workspace, home) as ws:
        history = records.history(ws, name)
        serving = records.serving(ws, name)
    if not history:
        raise NotFoundError(f"no deployment {name!r}", hint="see `amlpkg deployments list`")
    current = None if serving is None else serving.to_dict()
    return {
        "name": name,
        "serving": current,
        "endpoints": None if current is None else current["endpoints"],
        "history": [record.to_dict() for record in history],
    }


def status(
    name: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> dict[str, Any]:
    """The latest record of ``name`` and the live state its target reports."""
    with using_workspace(workspace, home) as ws:
        record = records.serving(ws, name) or records.get(ws, name)
        live = get_target(record.target).status(ws, record)
        return {**record.to_dict(), "live": live}


def delete(
    name: str, *, home: str | Path | None = None, workspace: Workspace | None = None
) -> DeploymentRecord:
    """Stop everything running for ``name``; its records stay as history."""
    with using_workspace(workspace, home) as ws, name_lock(ws, name):
        record = records.get(ws, name)
        return get_target(record.target).delete(ws, record)


def quickstart_step(
    ws: Workspace,
    model_ref: str,
    name: str = "quickstart",
    options: Options | None = None,
) -> tuple[str, str, str]:
    """Deploy ``model_ref`` locally, score it over HTTP and gRPC: ``(http, grpc, message)``."""
    from amlpkg.packager.deploy.smoke import smoke_grpc, smoke_http

    record = deploy(model_ref, target="local", name=name, options=options, workspace=ws)
    assert record.endpoint_http is not None and record.endpoint_grpc is not None
    version = resolve_source(ws, model_ref).model
    assert version is not None
    result = smoke_http(record.endpoint_http, version.name, version.signature)
    smoke_grpc(record.endpoint_grpc, version.name, version.signature)
    message = (
        f"deployed {version.ref} as {record.id}: scored over HTTP {record.endpoint_http}"
        f" (outputs {', '.join(o['name'] for o in result['outputs'])}) and gRPC"
        f" {record.endpoint_grpc}; stop it with `amlpkg deployments delete {name}`"
    )
    return record.endpoint_http, record.endpoint_grpc, message
