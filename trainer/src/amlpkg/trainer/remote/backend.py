"""One small interface over runs, models and lineage: the embedded workspace or a server.

The CLI's ``runs``, ``models`` and ``lineage`` commands call :func:`open_backend`
and then the same methods whichever backend it picked, so their output is the
same against a workspace and against a server serving that workspace. Both
answer the trainer's own types (:class:`RunRecord`, :class:`ModelVersion`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.lineage_edges import describe
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer import registry
from amlpkg.trainer.lineage_view import lineage
from amlpkg.trainer.refs import parse_model_ref
from amlpkg.trainer.registry import RUNS_SCHEME, ModelVersion
from amlpkg.trainer.remote.config import Server, tracking_server
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs
from amlpkg.trainer.store.runs import RunInfo, RunRecord

_REMOTE_RUN_LIMIT = 1000  # the server's largest page of runs


class Backend(Protocol):
    """What the trainer's commands read and write, wherever the workspace is."""

    where: str  # the workspace folder or the server URL, for messages

    def list_runs(
        self,
        experiment: str | None,
        status: str | None,
        limit: int,
        *,
        search: str | None = None,
        sort: str | None = None,
        order: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first or by ``sort``, narrowed by ``search`` (see run_filter)."""
        ...

    def get_run(self, ref: str) -> RunRecord:
        """One run by id or unique prefix."""
        ...

    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """Path, sha256 and size of a run's artifacts."""
        ...

    def best_run(self, metric: str, maximize: bool, experiment: str | None) -> RunRecord:
        """The run with the best final value of ``metric``."""
        ...

    def list_models(self) -> list[dict[str, Any]]:
        """One summary per model."""
        ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""
        ...

    def get_model_version(self, ref: str) -> ModelVersion:
        """The version ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` names."""
        ...

    def register(
        self, name: str, source: str, run: str | None, tags: dict[str, str], description: str | None
    ) -> ModelVersion:
        """Register a file or ``runs:/RUN/PATH`` as the next version of ``name``."""
        ...

    def set_alias(self, name: str, version: int, alias: str) -> ModelVersion:
        """Point ``NAME@ALIAS`` at ``version``."""
        ...

    def lineage(self, ref: str) -> dict[str, Any]:
        """The version, its run and the described edges (see :func:`amlpkg.trainer.lineage`)."""
        ...


class EmbeddedBackend:
    """The workspace folder (or store) on this machine."""

    def __init__(self, home: str | Path | None) -> None:
        self.home = home
        self.where = str(home) if home is not None else "the local workspace"

    def list_runs(
        self,
        experiment: str | None,
        status: str | None,
        limit: int,
        *,
        search: str | None = None,
        sort: str | None = None,
        order: str | None = None,
    ) -> list[RunRecord]:
        with open_workspace(self.home) as ws:
            return queries.list_runs(
                ws, experiment, status, limit, search=search, sort=sort, order=order
            )

    def get_run(self, ref: str) -> RunRecord:
        with open_workspace(self.home) as ws:
            return queries.get_run(ws, ref)

    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        with open_workspace(self.home) as ws:
            return store_runs.list_artifacts(ws, run_id)

    def best_run(self, metric: str, maximize: bool, experiment: str | None) -> RunRecord:
        with open_workspace(self.home) as ws:
            return queries.best_run(ws, metric, maximize=maximize, experiment=experiment)

    def list_models(self) -> list[dict[str, Any]]:
        return registry.list_models(home=self.home)

    def list_versions(self, name: str) -> list[ModelVersion]:
        return registry.list_versions(name, home=self.home)

    def get_model_version(self, ref: str) -> ModelVersion:
        return registry.get_model_version(ref, home=self.home)

    def register(
        self, name: str, source: str, run: str | None, tags: dict[str, str], description: str | None
    ) -> ModelVersion:
        return registry.register(
            name, source, run=run, tags=tags, description=description, home=self.home
        )

    def set_alias(self, name: str, version: int, alias: str) -> ModelVersion:
        return registry.set_alias(name, version, alias, home=self.home)

    def lineage(self, ref: str) -> dict[str, Any]:
        with open_workspace(self.home) as ws:
            chain = lineage(ref, workspace=ws)
            describe(ws, chain["downstream"])
        return chain


def run_record(data: dict[str, Any]) -> RunRecord:
    """A run as the server answers it (``RunOut``), as the store's record."""
    info = RunInfo(**{f.name: data.get(f.name) for f in fields(RunInfo)})
    return RunRecord(
        id=data["id"],
        experiment=data["experiment"],
        name=data.get("name"),
        status=data["status"],
        start_time=data["start_time"],
        end_time=data.get("end_time"),
        exit_code=data.get("exit_code"),
        info=info,
        params=dict(data.get("params") or {}),
        metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
        tags=dict(data.get("tags") or {}),
    )


def model_version(data: dict[str, Any]) -> ModelVersion:
    """A version as the server answers it (``VersionOut``), as the registry's record."""
    return ModelVersion(**{f.name: data[f.name] for f in fields(ModelVersion) if f.name in data})


class RemoteBackend:
    """A team server, through :class:`~amlpkg.trainer.remote.client.TeamClient`."""

    def __init__(self, server: Server) -> None:
        from amlpkg.trainer.remote.client import TeamClient

        self.client = TeamClient(server)
        self.where = server.url

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def list_runs(
        self,
        experiment: str | None,
        status: str | None,
        limit: int,
        *,
        search: str | None = None,
        sort: str | None = None,
        order: str | None = None,
    ) -> list[RunRecord]:
        limit = min(limit, _REMOTE_RUN_LIMIT)
        found = self.client.list_runs(
            experiment, status, limit, search=search, sort=sort, order=order
        )
        return [run_record(r) for r in found]

    def get_run(self, ref: str) -> RunRecord:
        return run_record(self.client.get_run(ref))

    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self.client.list_artifacts(run_id)

    def best_run(self, metric: str, maximize: bool, experiment: str | None) -> RunRecord:
        # The server sorts by a metric's final value, runs without it last.
        order = "desc" if maximize else "asc"
        found = self.list_runs(experiment, None, 1, sort=f"metrics.{metric}", order=order)
        if not found or metric not in found[0].metrics:
            where = f" in experiment {experiment!r}" if experiment else ""
            raise NotFoundError(f"no run{where} has logged metric {metric!r}")
        return found[0]

    def list_models(self) -> list[dict[str, Any]]:
        return self.client.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        return [model_version(v) for v in self.client.list_versions(name)]

    def _version_number(self, ref: str) -> tuple[str, int]:
        parsed = parse_model_ref(ref)
        if parsed.version is not None:
            return parsed.name, parsed.version
        if parsed.alias is not None:
            return parsed.name, int(self.client.get_alias(parsed.name, parsed.alias)["version"])
        return parsed.name, int(self.client.list_versions(parsed.name)[0]["version"])

    def get_model_version(self, ref: str) -> ModelVersion:
        parsed = parse_model_ref(ref)
        if parsed.alias is not None and parsed.version is None:
            return model_version(self.client.get_alias(parsed.name, parsed.alias))
        return model_version(self.client.get_version(*self._version_number(ref)))

    def register(
        self, name: str, source: str, run: str | None, tags: dict[str, str], description: str | None
    ) -> ModelVersion:
        if source.startswith(RUNS_SCHEME):
            if run is not None and not source[len(RUNS_SCHEME) :].startswith(run):
                raise InvalidArgumentError(f"--run {run} contradicts the run in {source}")
            return model_version(self.client.register_version(name, source, tags, description))
        if tags:
            raise InvalidArgumentError(
                "the team server takes tags only on versions registered from a run artifact",
                hint="log the file in a run and register runs:/RUN/PATH, or leave out --tag",
            )
        path = Path(source).expanduser()
        if not path.is_file():
            raise NotFoundError(f"model file {path} does not exist", hint="check the path")
        made = self.client.upload_version(name, path, run=run, description=description)
        return model_version(made)

    def set_alias(self, name: str, version: int, alias: str) -> ModelVersion:
        return model_version(self.client.set_alias(name, alias, version))

    def lineage(self, ref: str) -> dict[str, Any]:
        return self.client.version_lineage(*self._version_number(ref))


@contextmanager
def open_backend(
    home: str | Path | None = None, tracking_uri: str | None = None
) -> Iterator[Backend]:
    """The backend the settings select (see :mod:`amlpkg.trainer.remote.config`)."""
    server = tracking_server(home, tracking_uri)
    if server is None:
        yield EmbeddedBackend(home)
        return
    remote = RemoteBackend(server)
    try:
        yield remote
    finally:
        remote.close()
