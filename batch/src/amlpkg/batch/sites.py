"""Where batch scoring reads its model and records what it scored: a workspace or a team server.

Scoring always runs on this machine (or the Spark cluster it drives); only these
two steps touch a store. :class:`WorkspaceSite` is the embedded workspace;
:class:`ServerSite` a team server (``AMLPKG_TRACKING_URI`` or ``amlpkg login``):
the version's file is downloaded (sha256 checked) and the lineage edges (which
version scored which dataset, into which output) are recorded there.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from amlpkg.batch.lineage import record_scoring
from amlpkg.batch.model import ResolvedModel, check_size, model_of, resolve_model
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.refs import parse_model_ref
from amlpkg.trainer.remote.backend import RemoteBackend
from amlpkg.trainer.remote.config import tracking_server
from amlpkg.trainer.remote.model_files import download_version_file, require_contributor


class ScoringSite(Protocol):
    """What a scoring reads (the model) and writes (its lineage)."""

    def resolve(self, ref: str) -> ResolvedModel:
        """The version ``ref`` names, its bytes checked, ready to score."""
        ...

    def record(self, model_ref: str, input_id: str, output_id: str | None) -> None:
        """Record that ``model_ref`` scored the input dataset (into the output, if written)."""
        ...


class WorkspaceSite:
    """The embedded workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def resolve(self, ref: str) -> ResolvedModel:
        return resolve_model(ref, workspace=self.ws)

    def record(self, model_ref: str, input_id: str, output_id: str | None) -> None:
        record_scoring(self.ws, model_ref, input_id, output_id)


class ServerSite:
    """A team server: the model comes from it, the lineage goes to it."""

    def __init__(self, backend: RemoteBackend) -> None:
        self.backend = backend
        self.client = backend.client

    def resolve(self, ref: str) -> ResolvedModel:
        version = self.backend.get_model_version(ref)
        check_size(version)
        with tempfile.TemporaryDirectory(prefix="amlpkg-remote-score-") as tmp:
            path = Path(tmp) / "model.onnx"
            download_version_file(self.client, version.name, version.version, version.sha256,
                                  path)  # fmt: skip
            data = path.read_bytes()
        return model_of(version, data)

    def record(self, model_ref: str, input_id: str, output_id: str | None) -> None:
        parsed = parse_model_ref(model_ref)
        url = f"/models/{quote(parsed.name, safe='')}/versions/{parsed.version}/scorings"
        body = {"input": input_id, "output": output_id}
        self.client.request("POST", url, json=body, idempotent=True)  # edges are recorded once


@contextmanager
def scoring_site(home: str | Path | None = None) -> Iterator[ScoringSite]:
    """The site the settings select (see :mod:`amlpkg.trainer.remote.config`).

    Against a server a reader token is refused before any scoring: the lineage of
    what it scores could not be recorded.
    """
    server = tracking_server(home)
    if server is None:
        with open_workspace(home) as ws:
            yield WorkspaceSite(ws)
        return
    backend = RemoteBackend(server)
    try:
        require_contributor(backend.client, "amlpkg score")
        yield ServerSite(backend)
    finally:
        backend.close()
