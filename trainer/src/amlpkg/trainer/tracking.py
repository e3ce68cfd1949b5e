"""The training-script API: ``amlpkg.log_param``, ``amlpkg.log_metric``, ...

Inside ``amlpkg run`` the run exists already: its id comes in ``AMLPKG_RUN_ID``
(and the workspace in ``AMLPKG_HOME``, or the server in ``AMLPKG_TRACKING_URI``)
and the runner records its final status.
On its own, the first log call starts a run, which ends at interpreter exit:
``completed``, or ``failed`` when an uncaught exception ended the script.

With a tracking server selected (``AMLPKG_TRACKING_URI`` or ``amlpkg login``; see
:mod:`amlpkg.trainer.remote.config`) runs live on the server instead
(:class:`~amlpkg.trainer.remote.run.RemoteRun`, loaded only then).

Light on purpose: standard library, :mod:`amlpkg.errors` and the store only.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer import provenance
from amlpkg.trainer.remote.config import tracking_server
from amlpkg.trainer.store import runs as store_runs

if TYPE_CHECKING:
    from amlpkg.trainer.remote.run import RemoteRun

RUN_ID_ENV = "AMLPKG_RUN_ID"


class _State:
    """This process's tracking state (one active run at a time)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.active: Run | RemoteRun | None = None
        self.hooks_installed = False
        self.uncaught_exception = False


_state = _State()


class Run:
    """A run being logged to. ``owned`` runs are ended by this process."""

    def __init__(self, workspace: Workspace, run_id: str, *, owned: bool) -> None:
        self.workspace = workspace
        self.id = run_id
        self.owned = owned

    @property
    def home(self) -> Path:
        """The workspace folder holding this run."""
        return self.workspace.home

    def log_params(self, params: dict[str, Any]) -> None:
        """Record parameters (stringified)."""
        with _state.lock:  # one connection: writes from several threads take turns
            store_runs.log_params(self.workspace, self.id, params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Append metric values at ``step`` (default: each key's next step)."""
        with _state.lock:
            store_runs.log_metrics(self.workspace, self.id, metrics, step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set tags."""
        with _state.lock:
            store_runs.set_tags(self.workspace, self.id, tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> list[str]:
        """Store a file, or every file under a folder, as artifacts; return their run paths."""
        logged: list[str] = []
        for file, run_path in artifact_pairs(Path(path), artifact_path):
            digest, size = self.workspace.artifacts.put_file(file)
            with _state.lock:
                store_runs.add_artifact(self.workspace, self.id, str(run_path), digest, size)
            logged.append(str(run_path))
        return logged

    def end(self, status: str) -> None:
        """End the run with ``status`` if this process owns it; close the workspace."""
        try:
            if self.owned:
                store_runs.finish_run(self.workspace, self.id, status)
        finally:
            self.workspace.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end_run(exit_status(exc_type))


def exit_status(exc_type: type[BaseException] | None) -> str:
    """The status a ``with`` block ends its run with: completed, killed (Ctrl-C) or failed."""
    if exc_type is None:
        return "completed"
    return "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"


def _safe_artifact_dir(artifact_path: str | None) -> PurePosixPath:
    if not artifact_path:
        return PurePosixPath()
    pure = PurePosixPath(artifact_path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise InvalidArgumentError(
            f"artifact_path {artifact_path!r} must be a relative path without '..'"
        )
    return pure


def artifact_pairs(source: Path, artifact_path: str | None) -> list[tuple[Path, PurePosixPath]]:
    """``(file, path in the run)`` for a file or every file under a folder."""
    prefix = _safe_artifact_dir(artifact_path)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        return [(f, prefix / source.name / f.relative_to(source).as_posix()) for f in files]
    if source.is_file():
        return [(source, prefix / source.name)]
    raise NotFoundError(f"cannot log artifact {source}: no such file or folder")


def _install_exit_hooks() -> None:
    if _state.hooks_installed:
        return
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _state.uncaught_exception = True
        previous(exc_type, exc, tb)

    sys.excepthook = hook
    atexit.register(_end_at_exit)
    _state.hooks_installed = True


def _end_at_exit() -> None:
    if _state.active is not None:
        end_run("failed" if _state.uncaught_exception else "completed")


def start_run(
    experiment: str | None = None,
    run_name: str | None = None,
    *,
    home: str | Path | None = None,
) -> Run | RemoteRun:
    """Start a run (or join the one ``amlpkg run`` started) and make it the active run.

    ``home`` overrides ``AMLPKG_HOME`` and the tracking server. Raises if a run is
    active already.
    """
    with _state.lock:
        if _state.active is not None:
            raise FailedPreconditionError(
                f"run {_state.active.id} is already active", hint="call end_run() first"
            )
        parent_id = os.environ.get(RUN_ID_ENV)
        server = tracking_server(home)
        if server is not None:
            from amlpkg.trainer.remote.run import RemoteRun

            if parent_id:
                _state.active = RemoteRun.join(server, parent_id)
                if run_name:
                    _state.active.set_tags({"run_name": run_name})
            else:
                _state.active = RemoteRun.create(server, experiment, run_name)
                _install_exit_hooks()
            return _state.active
        workspace = open_workspace(home)
        try:
            if parent_id:
                # Launched by `amlpkg run`: log into its run; the runner ends it.
                store_runs._require_run(workspace, parent_id)
                run = Run(workspace, parent_id, owned=False)
                if run_name:
                    run.set_tags({"run_name": run_name})
            else:
                info = provenance.collect(provenance.current_command(), Path.cwd())
                run_id = store_runs.create_run(workspace, experiment, run_name, info)
                run = Run(workspace, run_id, owned=True)
                _install_exit_hooks()
        except BaseException:
            workspace.close()
            raise
        _state.active = run
        return run


def end_run(status: str = "completed") -> None:
    """End the active run with ``status`` (completed, failed or killed); no-op without one."""
    with _state.lock:
        run = _state.active
        if run is None:
            return
        try:
            run.end(status)
        finally:
            _state.active = None


def active_run() -> Run | RemoteRun | None:
    """The active run, or None."""
    return _state.active


def current_run() -> Run | RemoteRun | None:
    """The active run; inside ``amlpkg run`` (``AMLPKG_RUN_ID`` set) the launcher's run,
    joined now if no ``log_*`` call has joined it yet; else None (no run is started)."""
    with _state.lock:
        if _state.active is not None:
            return _state.active
        if os.environ.get(RUN_ID_ENV):
            return start_run()
        return None


def _run() -> Run | RemoteRun:
    with _state.lock:
        return _state.active if _state.active is not None else start_run()


def log_param(key: str, value: Any) -> None:
    """Record one parameter of the active run (starting a run if none is active)."""
    _run().log_params({key: value})


def log_params(params: dict[str, Any]) -> None:
    """Record several parameters of the active run."""
    _run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Append one metric value at ``step`` (default: this key's next step)."""
    _run().log_metrics({key: value}, step)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Append several metric values at the same ``step``."""
    _run().log_metrics(metrics, step)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> list[str]:
    """Store a file or folder as artifacts of the active run (under ``artifact_path``)."""
    return _run().log_artifact(path, artifact_path)


def set_tag(key: str, value: Any) -> None:
    """Set one tag on the active run."""
    _run().set_tags({key: value})
