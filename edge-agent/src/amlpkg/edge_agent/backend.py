"""Where the swapped models are served: the runtime in this process, or a scoring module.

:class:`ScoringBackend` is the small surface the swap logic (:mod:`.swap`) drives;
the swap steps themselves live once, in the swapper.

- :class:`LocalBackend`: a :class:`DataPlane` in this process over a local Triton
  repository; a model is installed as ``<repo>/<name>/<version>/model.onnx`` with a
  ``config.yaml`` whose version policy names only that version, then reloaded.
- :class:`RemoteBackend` (:mod:`.remote`): a separate scoring module reached over
  KServe v2 HTTP; a model is pushed with Triton's load call and file override.

Both reload through the runtime's repository, which builds the new session first
and keeps the old version serving when the new one fails to load.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from amlpkg.errors import AmlpkgError
from amlpkg.runtime.datatypes import from_v2
from amlpkg.runtime.summaries import PROBE_ID
from amlpkg.runtime.types import InferInput, InferRequest

if TYPE_CHECKING:
    from prometheus_client import Metric

    from amlpkg.runtime.dataplane import DataPlane

MODEL_FILE = "model.onnx"
SMOKE_ID = PROBE_ID  # the runtime leaves these out of its output summaries


class ScoringBackend(Protocol):
    """What the swapper needs from whatever serves the models."""

    async def live(self) -> bool:
        """True when the scoring server answers."""
        ...

    async def serve(self, name: str, version: int, model: Path, config: dict[str, Any]) -> None:
        """Serve ``model`` as ``name`` version ``version`` only; raise if it cannot load.

        A failed load leaves the version that served before serving.
        """
        ...

    async def remove(self, name: str) -> None:
        """Stop serving ``name`` (after its in-flight requests)."""
        ...

    async def reload(self, name: str, version: int, model: Path, config: dict[str, Any]) -> None:
        """Load the served model again (e.g. after its runtime config changed)."""
        ...

    async def smoke_test(self, name: str) -> None:
        """One inference with zero inputs shaped from the model's metadata."""
        ...

    async def is_ready(self, name: str, version: str) -> bool:
        """True when version ``version`` of ``name`` is ready."""
        ...

    async def providers(self, name: str) -> list[str]:
        """Execution providers the served model runs on."""
        ...

    async def metric_families(self) -> Iterable[Metric]:
        """The scoring server's Prometheus metric families."""
        ...


def smoke_shape(shape: Iterable[int]) -> tuple[int, ...]:
    """The smoke input shape: dynamic dims become 1."""
    return tuple(1 if dim < 0 else dim for dim in shape)


class LocalBackend:
    """The runtime's data plane in this process over the repository folder ``repository``."""

    def __init__(self, dataplane: DataPlane, repository: Path) -> None:
        self.dataplane = dataplane
        self.repository = repository

    async def live(self) -> bool:
        """The in-process runtime is up whenever the agent is."""
        return await self.dataplane.live()

    def _write_version(
        self, model_dir: Path, version: int, source: Path, config: dict[str, Any]
    ) -> None:
        target = model_dir / str(version)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / f"{MODEL_FILE}.tmp")
        os.replace(target / f"{MODEL_FILE}.tmp", target / MODEL_FILE)
        # JSON is YAML: the runtime reads it as config.yaml.
        tmp = model_dir / "config.yaml.tmp"
        tmp.write_text(json.dumps({**config, "version_policy": {"specific": [version]}}))
        os.replace(tmp, model_dir / "config.yaml")

    async def serve(self, name: str, version: int, model: Path, config: dict[str, Any]) -> None:
        """Install the version folder and its policy, then reload (old policy back on failure)."""
        model_dir = self.repository / name
        old_config = model_dir / "config.yaml"
        saved = old_config.read_text() if old_config.is_file() else None
        self._write_version(model_dir, version, model, config)
        try:
            await self.dataplane.load_model(name)
        except AmlpkgError:
            if saved is not None:  # put the old policy back so a restart serves the old model
                old_config.write_text(saved)
                await self.dataplane.load_model(name)
            raise
        for other in model_dir.iterdir():
            if other.is_dir() and other.name.isdigit() and int(other.name) != version:
                shutil.rmtree(other, ignore_errors=True)

    async def remove(self, name: str) -> None:
        """Unload and delete the model's folder."""
        try:
            await self.dataplane.unload_model(name)
        finally:
            shutil.rmtree(self.repository / name, ignore_errors=True)

    async def reload(self, name: str, version: int, model: Path, config: dict[str, Any]) -> None:
        """Reload from the repository folder (picks up a hand-edited ``config.yaml``)."""
        await self.dataplane.load_model(name)

    async def smoke_test(self, name: str) -> None:
        """One zero-input inference through the data plane."""
        metadata = await self.dataplane.model_metadata(name)
        inputs = []
        for spec in metadata.inputs:
            shape = smoke_shape(spec.shape)
            if spec.datatype == "BYTES":
                data = np.full(shape, b"", dtype=object)
            else:
                data = np.zeros(shape, dtype=from_v2(spec.datatype).numpy)
            inputs.append(InferInput(spec.name, spec.datatype, shape, data))
        await self.dataplane.infer(InferRequest(name, None, inputs, id=SMOKE_ID))

    async def is_ready(self, name: str, version: str) -> bool:
        """Whether the data plane has version ``version`` of ``name`` ready."""
        try:
            return await self.dataplane.model_ready(name, version)
        except AmlpkgError:
            return False

    async def providers(self, name: str) -> list[str]:
        """Providers from the model's metadata parameters."""
        meta = await self.dataplane.model_metadata(name)
        return list(meta.parameters.get("execution_providers", []))

    async def metric_families(self) -> Iterable[Metric]:
        """The data plane's own registry."""
        return list(self.dataplane.metrics_registry.collect())
