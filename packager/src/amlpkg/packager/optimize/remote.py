"""``amlpkg optimize`` against a team server: made and measured here, recorded there.

The variants are measured on the user's machine (the hardware they are for), so
the pipeline runs here as it does on a workspace; :class:`ServerStore` only
changes where the model comes from and where the results go: the version's file
is downloaded (sha256 checked), each variant file is uploaded as soon as it is
made, and the rows go in one call at the end, which the server records with its
lineage edges in one transaction (nothing when any row is refused).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize import data
from amlpkg.packager.optimize.options import OptimizeOptions
from amlpkg.packager.optimize.pipeline import optimize_in
from amlpkg.packager.optimize.report import OptimizeReport
from amlpkg.packager.optimize.store import Variant
from amlpkg.trainer.registry import ModelVersion
from amlpkg.trainer.remote.backend import RemoteBackend
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.remote.model_files import (
    download_artifact,
    download_version_file,
    record_variants,
    require_contributor,
    upload_variant_file,
)

_SAMPLE_BYTES = 256 * 1024 * 1024  # a calibration sample larger than this stays on the server


class ServerStore:
    """A team server as the store of ``optimize`` (see the module docstring)."""

    def __init__(self, backend: RemoteBackend, scratch: Path) -> None:
        self.backend = backend
        self.client = backend.client
        self.scratch = scratch
        self.version: ModelVersion | None = None

    def model_version(self, ref: str) -> ModelVersion:
        self.version = self.backend.get_model_version(ref)
        return self.version

    def copy_model_file(self, version: ModelVersion, dest: Path) -> None:
        download_version_file(self.client, version.name, version.version, version.sha256, dest)

    def run_sample(self, version: ModelVersion) -> data.Sample | None:
        """The first ``.npz`` artifact of the version's run that fits the model, as embedded."""
        if version.run_id is None:
            return None
        for artifact in self.client.list_artifacts(version.run_id):
            if not str(artifact["path"]).endswith(".npz") or artifact["size"] > _SAMPLE_BYTES:
                continue
            dest = self.scratch / f"sample-{artifact['sha256'][:16]}.npz"
            download_artifact(self.client, version.run_id, artifact, dest)
            try:
                sample = data.load_npz(dest, version.signature, role="calibration")
            except InvalidArgumentError:
                continue  # an .npz for something else
            source = f"run {version.run_id}:{artifact['path']}"
            return data.Sample(sample.inputs, sample.labels, source, False)
        return None

    def put_file(self, path: Path) -> tuple[str, int]:
        version = self._version()
        return upload_variant_file(self.client, version.name, version.version, path)

    def record(self, variants: list[Variant]) -> None:
        if not variants:
            return
        version = self._version()
        rows = [{k: v for k, v in x.to_dict().items() if k != "created"} for x in variants]
        recorded = {r["id"]: r for r in record_variants(self.client, version.name,
                                                        version.version, rows)}  # fmt: skip
        for variant in variants:  # the report shows the server's times
            variant.created = float(recorded[variant.id]["created"])

    def _version(self) -> ModelVersion:
        if self.version is None:
            raise AssertionError("model_version() comes first")  # the pipeline's order
        return self.version


def optimize_on_server(
    server: Server,
    ref: str,
    options: OptimizeOptions | None = None,
    *,
    on_step: Callable[[str], None] | None = None,
) -> OptimizeReport:
    """:func:`amlpkg.packager.optimize.optimize` on a version of the team server ``server``."""
    backend = RemoteBackend(server)
    try:
        require_contributor(backend.client, "amlpkg optimize")
        with tempfile.TemporaryDirectory(prefix="amlpkg-remote-optimize-") as scratch:
            store = ServerStore(backend, Path(scratch))
            return optimize_in(store, ref, options or OptimizeOptions(), on_step=on_step)
    finally:
        backend.close()
