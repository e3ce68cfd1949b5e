"""The one deployment lifecycle every target goes through.

    prepare (checks, nothing recorded) -> record the revision ``pending``
    -> start it beside the serving one and verify it -> switch traffic to it
    -> retire the older revisions -> mark it ``ready``

Any exception before the switch is complete (an amlpkg error, or a foreign one from
docker, kubernetes, azure, the OS) marks the revision ``failed`` with the error,
undoes what was started, and is raised as an amlpkg error: the previous revision
keeps serving and the record never stays ``pending``. Once traffic has moved, a
revision that cannot be retired is marked ``failed`` itself with what to do by hand,
and the new revision still becomes ``ready`` (it is the one serving).
"""

from __future__ import annotations

import logging
from typing import Any

from amlpkg.errors import AmlpkgError
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.targets.base import DeployRequest, Revision, Target
from amlpkg.store.workspace import Workspace

log = logging.getLogger(__name__)


def apply(ws: Workspace, target: Target[Any], request: DeployRequest[Any]) -> DeploymentRecord:
    """Deploy ``request`` on ``target`` as a new revision; see the module docstring."""
    fields = target.prepare(ws, request)  # may hold handles: released below
    previous = records.serving(ws, request.name)
    record = records.create(
        ws,
        name=request.name,
        target=target.name,
        config={**request.config(), **fields.config},
        model=fields.model,
        package=fields.package,
        image=fields.image,
        image_digest=fields.image_digest,
    )
    rev: Revision[Any] = Revision(
        request, record, previous, live=dict(fields.live), image_digest=fields.image_digest
    )
    try:
        try:
            target.start(ws, rev)
            target.switch(ws, rev)
        except BaseException as exc:
            error = _failed(ws, target, rev, exc)
            if error is exc:
                raise
            raise error from exc
        for old in records.history(ws, request.name):
            # A canary serves beside the old revision until a gate decides (deploy.canary).
            if old.id != rev.id and old.status == "ready" and not rev.state.get("canary"):
                _retire(ws, target, rev, old)
    finally:
        target.release(ws, rev)
    return records.update(
        ws,
        rev.id,
        status="ready",
        reason=rev.reason,
        endpoint_http=rev.endpoint_http,
        endpoint_grpc=rev.endpoint_grpc,
        image_digest=rev.image_digest,
        state={"verified": True, **rev.state},
    )


def _failed(
    ws: Workspace, target: Target[Any], rev: Revision[Any], exc: BaseException
) -> BaseException:
    """Record ``rev`` failed and undo it; returns what to raise (an amlpkg error if it can)."""
    if isinstance(exc, AmlpkgError):
        error: BaseException = exc
        reason = exc.message
    elif isinstance(exc, Exception):
        error = target.wrap(exc)
        reason = error.message if isinstance(error, AmlpkgError) else str(error)
    else:  # KeyboardInterrupt, SystemExit: record it, raise it as it is
        error, reason = exc, f"interrupted ({type(exc).__name__})"
    try:
        target.abort(ws, rev)
    except Exception:  # abort is best effort; the failure to report is the first one
        log.exception("cleaning up the failed revision %s", rev.id)
    records.update(ws, rev.id, status="failed", reason=reason)
    serving = records.serving(ws, rev.request.name)
    if isinstance(error, AmlpkgError) and serving is not None:
        where = f" at {serving.endpoint_http}" if serving.endpoint_http else ""
        keeps = f"{serving.id} keeps serving{where}"
        if keeps not in (error.hint or ""):
            error.hint = keeps + (f"; {error.hint}" if error.hint else "")
    return error


def _retire(ws: Workspace, target: Target[Any], rev: Revision[Any], old: DeploymentRecord) -> None:
    """Stop ``old``; a failure is recorded on ``old`` (``rev`` serves either way)."""
    try:
        target.retire(ws, rev, old)
    except Exception as exc:
        error = exc if isinstance(exc, AmlpkgError) else target.wrap(exc)
        log.warning("could not stop %s after switching to %s: %s", old.id, rev.id, error)
        records.update(
            ws,
            old.id,
            status="failed",
            reason=f"replaced by {rev.id}, but stopping it failed: {error};"
            f" stop it by hand or run `amlpkg deployments delete {rev.request.name}`",
        )
        return
    records.update(ws, old.id, status="stopped", reason=f"replaced by {rev.id}")


class Lifecycle:
    """Mixin for targets: ``apply`` runs this module's lifecycle with the target's steps.

    The steps a target has nothing to do in default to nothing here: ``switch`` (the
    target routes by itself, e.g. a Kubernetes Service), ``retire``, ``abort``, ``release``.
    """

    def switch(self, ws: Workspace, rev: Revision[Any]) -> None:
        """Traffic reaches the revision once started: nothing to switch."""
        rev.switched = True

    def retire(self, ws: Workspace, rev: Revision[Any], old: DeploymentRecord) -> None:
        """Nothing to stop: the new revision replaced the old one in place."""

    def abort(self, ws: Workspace, rev: Revision[Any]) -> None:
        """Nothing to undo."""

    def release(self, ws: Workspace, rev: Revision[Any]) -> None:
        """No handles to close."""

    def apply(self, ws: Workspace, request: DeployRequest[Any]) -> DeploymentRecord:
        """Deploy ``request`` as a new revision (see :func:`apply`)."""
        target: Target[Any] = self  # type: ignore[assignment]  # the subclass is a Target
        return apply(ws, target, request)
