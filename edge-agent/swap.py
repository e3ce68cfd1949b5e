"""Verified model swap on the local runtime without failing a request.

Steps for a new desired model: fetch and verify (digest, signature) -> load it as a
hidden candidate model (``_candidate``) beside the serving one -> smoke inference
built from its metadata -> install it as ``<repo>/<name>/<version>/`` with a version
policy naming only that version and reload: the runtime builds the new session
first, switches its table in one assignment and closes the old version once its
in-flight requests finish. Any failed step leaves the old model serving and is
recorded as ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.edge_agent.desired import DesiredModel
from amlpkg.edge_agent.download import fetch_model
from amlpkg.errors import AmlpkgError, FailedPreconditionError
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.datatypes import from_v2
from amlpkg.runtime.types import InferInput, InferRequest

log = logging.getLogger(__name__)
CANDIDATE = "_candidate"


@dataclass
class SwapState:
    """What the device serves now, what it served before, and the last failure."""

    current: DesiredModel | None = None
    previous: DesiredModel | None = None
    last_error: str | None = None
    last_swap: float | None = None
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (also what is persisted)."""
        return {
            "current": self.current.model_dump() if self.current else None,
            "previous": self.previous.model_dump() if self.previous else None,
            "last_error": self.last_error,
            "last_swap": self.last_swap,
        }


class ModelSwapper:
    """Applies desired models to one in-process data plane over ``repository``."""

    def __init__(
        self,
        dataplane: DataPlane,
        repository: Path,
        state_dir: Path,
        *,
        public_key_pem: bytes | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.repository = repository
        self.state_dir = state_dir
        self.public_key_pem = public_key_pem
        self._lock = asyncio.Lock()
        self.state = self._load_state()

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "swap-state.json"

    def _load_state(self) -> SwapState:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return SwapState()
        return SwapState(
            current=DesiredModel.model_validate(data["current"]) if data.get("current") else None,
            previous=DesiredModel.model_validate(data["previous"])
            if data.get("previous")
            else None,
            last_error=data.get("last_error"),
            last_swap=data.get("last_swap"),
        )

    def _save_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state.to_dict(), indent=1))
        os.replace(tmp, self._state_file)

    async def apply(self, desired: DesiredModel) -> bool:
        """Serve ``desired``; False when it is already served. Raises (and records) failures."""
        async with self._lock:
            current = self.state.current
            if current is not None and current.model_dump(
                exclude={"url", "oci", "signature"}
            ) == desired.model_dump(exclude={"url", "oci", "signature"}):
                return False
            try:
                await self._swap(desired)
            except AmlpkgError as exc:
                self.state.last_error = f"{desired.ref}: {exc.message}"
                self._save_state()
                log.error("model swap to %s failed, old model keeps serving: %s", desired.ref, exc)
                raise
            self.state.previous, self.state.current = current, desired
            self.state.last_error = None
            self.state.last_swap = time.time()
            self._save_state()
            log.info("now serving %s (sha256 %s)", desired.ref, desired.sha256[:12])
            return True

    async def rollback(self) -> DesiredModel:
        """Serve the previous model again (it is still in the local cache)."""
        previous = self.state.previous
        if previous is None:
            raise FailedPreconditionError(
                "there is no previous model to roll back to",
                hint="a rollback needs one successful swap first",
            )
        await self.apply(previous)
        return previous

    async def reload(self) -> None:
        """Reload the current model from disk (e.g. after its config.yaml changed)."""
        if self.state.current is None:
            raise FailedPreconditionError("no model is being served yet")
        await self.dataplane.load_model(self.state.current.name)

    async def _swap(self, desired: DesiredModel) -> None:
        path = await asyncio.to_thread(
            fetch_model,
            desired,
            self.state_dir / "staging",
            self.state_dir / "models",
            public_key_pem=self.public_key_pem,
        )
        await self._check_candidate(desired, path)
        await self._install(desired, path)

    def _write_version(
        self, model_dir: Path, version: int, source: Path, config: dict[str, Any]
    ) -> None:
        target = model_dir / str(version)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / "model.onnx.tmp")
        os.replace(target / "model.onnx.tmp", target / "model.onnx")
        # JSON is YAML: the runtime reads it as config.yaml.
        (model_dir / "config.yaml").write_text(
            json.dumps({**config, "version_policy": {"specific": [version]}})
        )

    async def _check_candidate(self, desired: DesiredModel, path: Path) -> None:
        """Load the model under a hidden name and run one inference on it."""
        candidate_dir = self.repository / CANDIDATE
        shutil.rmtree(candidate_dir, ignore_errors=True)
        self._write_version(candidate_dir, 1, path, desired.config)
        try:
            await self.dataplane.load_model(CANDIDATE)
            await smoke_test(self.dataplane, CANDIDATE)
        except AmlpkgError as exc:
            raise FailedPreconditionError(
                f"model {desired.ref} failed its load/smoke check: {exc.message}",
                hint="fix the model or its runtime config; the old model keeps serving",
            ) from None
        finally:
            with contextlib.suppress(AmlpkgError):
                await self.dataplane.unload_model(CANDIDATE)
            shutil.rmtree(candidate_dir, ignore_errors=True)

    async def _install(self, desired: DesiredModel, path: Path) -> None:
        model_dir = self.repository / desired.name
        version = int(desired.version)
        old_config = model_dir / "config.yaml"
        saved = old_config.read_text() if old_config.is_file() else None
        self._write_version(model_dir, version, path, desired.config)
        try:
            await self.dataplane.load_model(desired.name)
        except AmlpkgError:
            if saved is not None:  # put the old policy back so a restart serves the old model
                old_config.write_text(saved)
                await self.dataplane.load_model(desired.name)
            raise
        current = self.state.current
        if current is not None and current.name != desired.name:
            await self.dataplane.unload_model(current.name)
            shutil.rmtree(self.repository / current.name, ignore_errors=True)
        for other in model_dir.iterdir():
            if other.is_dir() and other.name.isdigit() and int(other.name) != version:
                shutil.rmtree(other, ignore_errors=True)
        self._prune_cache(keep={desired.sha256, *(m.sha256 for m in [current] if m)})

    def _prune_cache(self, keep: set[str]) -> None:
        for cached in (self.state_dir / "models").glob("*.onnx"):
            if cached.stem not in keep:
                cached.unlink(missing_ok=True)


async def smoke_test(dataplane: DataPlane, name: str) -> None:
    """One inference with zero inputs shaped from the model metadata (dynamic dims = 1)."""
    metadata = await dataplane.model_metadata(name)
    inputs = []
    for spec in metadata.inputs:
        shape = tuple(1 if dim < 0 else dim for dim in spec.shape)
        if spec.datatype == "BYTES":
            data = np.full(shape, b"", dtype=object)
        else:
            data = np.zeros(shape, dtype=from_v2(spec.datatype).numpy)
        inputs.append(InferInput(spec.name, spec.datatype, shape, data))
    await dataplane.infer(InferRequest(name, None, inputs, id="edge-agent-smoke"))
