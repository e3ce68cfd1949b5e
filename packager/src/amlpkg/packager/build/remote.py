"""``amlpkg build`` / ``amlpkg package`` against a team server: built here, recorded there.

The image or folder (or the edge agent's image) is made on the user's machine
(their Docker engine, their registry, their caches); :class:`ServerSite` fetches the
version, or the variant ``amlpkg optimize --auto`` chose on the server, sha256
checked, and records the package row and its lineage edges on the server. A version
signed on the server has its signature copied into the build's cache workspace, so
the build places it beside the model (and ``--require-signature`` builds) as an
embedded build does.
An edge agent image is recorded as its lineage arrow (``POST /agent-images``), where
``deploy --target iotedge`` against the server finds it.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from amlpkg.packager.build.options import BuildOptions, Hooks
from amlpkg.packager.build.recipe import ModelFacts
from amlpkg.packager.build.records import Package
from amlpkg.packager.build.sites import Made
from amlpkg.packager.build.source import ModelSource
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.remote.backend import RemoteBackend
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server, server_cache_dir
from amlpkg.trainer.remote.edge_records import record_agent_image
from amlpkg.trainer.remote.model_files import (
    download_variant_file,
    download_version_file,
    list_variants,
    record_package,
    require_contributor,
)
from amlpkg.trainer.remote.signatures import keep_signature

if TYPE_CHECKING:
    from amlpkg.packager.build.agent_image import AgentImage
    from amlpkg.packager.build.oci_builder.build import OciOptions


class ServerSite:
    """A team server as the model source and package record of a build."""

    def __init__(self, backend: RemoteBackend, scratch: Path, ws: Workspace) -> None:
        self.backend = backend
        self.client = backend.client
        self.scratch = scratch
        self.ws = ws  # the build's cache workspace: the signature is copied there

    def resolve(self, ref: str, target: str, *, use_variant: bool) -> ModelSource:
        version = self.backend.get_model_version(ref)
        variant = None
        if use_variant:
            # The rule of optimize.best_variant: the newest chosen, accepted one.
            found = list_variants(self.client, version.name, version.version, target)
            chosen = [v for v in found if v["chosen"] and v["accepted"]]
            variant = max(chosen, key=lambda v: (v["created"], v["id"])) if chosen else None
        model_file = self.scratch / "model.onnx"
        if variant is None:
            download_version_file(
                self.client, version.name, version.version, version.sha256, model_file
            )
            sha256, variant_id, providers = version.sha256, None, None
            # Beside the model in the build, as an embedded build places it.
            keep_signature(self.client, version, self.ws)
        else:
            download_variant_file(self.client, variant, model_file)
            sha256, variant_id = str(variant["sha256"]), str(variant["id"])
            providers = tuple(variant["providers"]) or None
        run = None if version.run_id is None else self.backend.get_run(version.run_id)
        facts = ModelFacts(
            name=version.name,
            version=version.version,
            sha256=sha256,
            run_id=version.run_id,
            variant=variant_id,
            git_commit=None if run is None else run.info.git_commit,
            description=version.description,
        )
        return ModelSource(version, model_file, facts, variant_id, providers)

    def record(self, package: Package, made: Made | None) -> Package:
        body = {k: v for k, v in package.to_dict().items() if k not in ("model_ref", "created")}
        if made is not None:
            body["made"] = {"kind": made[0][0], "id": made[0][1], "relation": made[1]}
        package.created = float(record_package(self.client, body)["created"])
        return package


def build_workspace(server: Server) -> Path:
    """The cache workspace of builds against ``server``: one per server, so a signature
    fetched from one never sits beside another server's same-named model."""
    return server_cache_dir("build", server)


def build_on_server(
    server: Server,
    ref: str,
    options: BuildOptions,
    hooks: Hooks | None = None,
    oci: OciOptions | None = None,
) -> Package:
    """Build ``ref`` of the team server here (image, dir, tar or triton); record it there.

    With ``oci`` the image is written and pushed daemonless (``--builder oci``).
    The build's caches (wheels, contexts, signatures) live in that server's workspace in
    the user's cache folder (:func:`build_workspace`), which holds no model or package rows.
    """
    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.oci_builder.build import build_oci_image
    from amlpkg.packager.build.package_dir import make_package

    backend = RemoteBackend(server)
    try:
        require_contributor(backend.client, "amlpkg build")
        with (
            open_workspace(build_workspace(server)) as ws,
            tempfile.TemporaryDirectory(prefix="amlpkg-remote-build-") as scratch,
        ):
            site = ServerSite(backend, Path(scratch), ws)
            if oci is not None:
                return build_oci_image(ws, ref, options, oci, hooks, site=site)
            if options.format == "image":
                return build_image(ws, ref, options, hooks, site=site)
            return make_package(ws, ref, options, hooks, site=site)
    finally:
        backend.close()


def build_agent_on_server(
    server: Server, options: BuildOptions, hooks: Hooks | None = None, oci: OciOptions | None = None
) -> AgentImage:
    """Build the edge agent's image here (the Docker engine, or daemonless with ``oci``) and
    record it on the team server; caches live in the same folder as :func:`build_on_server`."""
    from amlpkg.packager.build.agent_image import build_agent_image
    from amlpkg.packager.build.oci_builder.agent import build_oci_agent_image

    with TeamClient(server) as client:
        require_contributor(client, "amlpkg build --flavor edge-agent")
        record = partial(record_agent_image, client)
        with open_workspace(build_workspace(server)) as ws:
            if oci is None:
                return build_agent_image(ws, options, hooks, record=record)
            return build_oci_agent_image(ws, options, oci, hooks, record=record)
