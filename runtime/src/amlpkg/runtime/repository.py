"""The model repository (Triton layout ``<repo>/<model>/<version>/model.onnx``) and its states.

A model that fails to load is recorded UNAVAILABLE with the reason while the
others keep serving. A reload is transactional: it builds every new session first;
only when all of them load does it switch the table in one assignment and close the
old versions once their requests finish. When any fails, every version that was
serving keeps serving and the failure is reported to the caller.

Triton's file override on load (``file:<version>/model.onnx`` parameters) writes the
bytes into a runtime-owned override folder (a fresh generation folder per load, never
the user's repository) and loads the model from there; a later load without files
goes back to the repository folder. Generations no loaded version uses are removed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from amlpkg.runtime.errors import ModelLoadError, ModelNotFoundError, ModelNotReadyError
from amlpkg.runtime.floors import Floors
from amlpkg.runtime.metrics import RuntimeMetrics
from amlpkg.runtime.model import LoadedModel
from amlpkg.runtime.model_config import ModelConfig, load_model_config
from amlpkg.runtime.session import OnnxSession
from amlpkg.runtime.signing import SignatureError, Trust, Verified, check_not_older
from amlpkg.runtime.types import RepositoryModel

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"
# ASCII digits only: str.isdigit() also takes superscripts and other scripts' digits,
# which int() refuses or silently reads as ASCII ones.
_VERSION = re.compile(r"[0-9]{1,18}")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def check_model_name(name: str) -> None:
    """Refuse names that cannot be a folder of the repository (NUL, '/', '..', ...)."""
    if not name or len(name) > 255 or name.startswith(".") or _BAD_NAME.search(name):
        raise ModelNotFoundError(
            f"Request for unknown model: {name[:255]!r} is not a valid model name",
            hint="a model name is a folder name: no '/', '\\', control characters or leading '.'",
        )


def unknown_model(name: str, version: str | None = None) -> ModelNotFoundError:
    """Triton's text for a model (version) it does not know; clients match on it."""
    which = f"'{name}'" if version is None else f"'{name}' version {version}"
    return ModelNotFoundError(f"Request for unknown model: {which} is not found")


@dataclass(frozen=True, slots=True)
class VersionState:
    """One row of the state table: a loaded model, or why there is none."""

    state: str
    reason: str = ""
    model: LoadedModel | None = None


class ModelRepository:
    """Loads, serves and unloads the models of one repository folder."""

    def __init__(
        self,
        root: Path,
        metrics: RuntimeMetrics,
        drain_timeout_s: float = 30.0,
        override_root: Path | None = None,
        trust: Trust | None = None,
        *,
        floors: Floors | None = None,
    ) -> None:
        self.root = root
        # With a trust anchor, every version must carry a valid signature to load.
        self._trust = trust
        # Highest signed version each model has served: an older signed one is a replay.
        self._floors = floors or Floors()
        self._metrics = metrics
        self._drain_timeout_s = drain_timeout_s
        self._table: dict[str, dict[int, VersionState]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Where override files go; None: a temp folder made on first use, removed at close.
        self._override_root = override_root
        self._own_override_root = False
        self._sources: dict[str, Path] = {}  # model -> override generation it serves from
        self._generation = itertools.count(1)

    def model_names(self) -> list[str]:
        """Model folders in the repository (hidden ones skipped)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] not in "._")

    def _disk_versions(self, model_dir: Path) -> list[int]:
        return sorted(
            int(p.name)
            for p in model_dir.iterdir()
            if p.is_dir() and p.name.isdigit() and int(p.name) > 0
        )

    async def load(
        self,
        name: str,
        config: ModelConfig | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        """Load or reload every version the policy selects; raise if none could load.

        ``files`` (``{"<version>/model.onnx": bytes}``, names already checked) replaces
        the model's folder for this load with an override folder holding just them.
        """
        check_model_name(name)
        model_dir = self.root / name
        if not files and not model_dir.is_dir():
            raise ModelNotFoundError(
                f"failed to load '{name}', failed to poll from model repository",
                hint="the model repository has no folder of that name",
            )
        async with self._locks.setdefault(name, asyncio.Lock()):
            old = self._table.get(name, {})
            try:
                if files:
                    source = await asyncio.to_thread(self._write_override, name, files)
                    config = config or (
                        load_model_config(model_dir) if model_dir.is_dir() else ModelConfig()
                    )
                else:
                    source = model_dir
                    config = config or load_model_config(model_dir)
                versions = config.version_policy.select(self._disk_versions(source))
                if not versions:
                    raise ModelLoadError(
                        f"model {name!r}: no version folder matches the version policy",
                        hint=f"add {source}/<N>/{MODEL_FILE} (N a positive integer)",
                    )
            except ModelLoadError as exc:
                if not any(s.state == READY for s in old.values()):
                    self._table[name] = {0: VersionState(UNAVAILABLE, str(exc))}
                await asyncio.to_thread(self._prune_overrides, name)
                raise
            loading = {v: old.get(v, VersionState(LOADING)) for v in versions}
            self._table[name] = {**old, **loading}
            built = await asyncio.gather(*(self._build(name, source, v, config) for v in versions))
            if any(s.state != READY for s in built) and any(s.state == READY for s in old.values()):
                # All or nothing: what served before keeps serving, the new sessions go.
                logger.error("model %s failed to reload; the serving versions keep serving", name)
                self._table[name] = old
                fresh = {v: s for v, s in zip(versions, built, strict=True) if s.model}
                await self._close_replaced(fresh, old)
            else:
                new = dict(zip(versions, built, strict=True))
                self._table[name] = new  # the switch: new requests now reach the new sessions
                if all(s.state == READY for s in built):
                    self._sources[name] = source
                self._raise_floor(name, built)
                await self._close_replaced(old, new)
            await asyncio.to_thread(self._prune_overrides, name)
        # A failed reload is reported to the caller even when the old version keeps serving.
        failures = [
            f"version {v}: {s.reason}"
            for v, s in zip(versions, built, strict=True)
            if s.state != READY
        ]
        if failures:
            raise ModelLoadError(f"failed to load '{name}', " + "; ".join(failures))

    def _overrides(self) -> Path:
        if self._override_root is None:
            self._override_root = Path(tempfile.mkdtemp(prefix="amlpkg-overrides-"))
            self._own_override_root = True
        return self._override_root

    def _write_override(self, name: str, files: Mapping[str, bytes]) -> Path:
        """A new generation folder ``<overrides>/<name>/<n>/`` holding ``files``."""
        try:
            target = self._overrides() / name / f"g{next(self._generation)}"
            shutil.rmtree(target, ignore_errors=True)
            for relative, data in files.items():
                path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        except OSError as exc:
            raise ModelLoadError(
                f"model {name!r}: cannot write its override files: {exc}",
                hint="free space in the runtime's temp folder (TMPDIR) or override folder",
            ) from None
        return target

    def _prune_overrides(self, name: str) -> None:
        """Remove override generations of ``name`` that no loaded version uses."""
        if self._override_root is None:
            return
        folder = self._override_root / name
        if not folder.is_dir():
            return
        used = {s.model.path.parent.parent for s in self._table.get(name, {}).values() if s.model}
        used.add(self._sources.get(name, self.root / name))
        for generation in folder.iterdir():
            if generation not in used:
                shutil.rmtree(generation, ignore_errors=True)

    def _raise_floor(self, name: str, built: list[VersionState]) -> None:
        signed = [s.model.verified.release.version for s in built if s.model and s.model.verified]
        if signed:
            self._floors.raise_to(name, max(signed))

    def _verify(self, name: str, folder: Path) -> Verified | None:
        """Check the version folder's signature (when trust is configured), off the loop."""
        if self._trust is None:
            return None
        verified = self._trust.verify_folder(folder)
        check_not_older(verified.release, self._floors.get(name), f"model {name!r}")
        return verified

    async def _build(
        self, name: str, source: Path, version: int, config: ModelConfig
    ) -> VersionState:
        path = source / str(version) / MODEL_FILE
        try:
            verified = await asyncio.to_thread(self._verify, name, path.parent)
        except SignatureError as exc:
            logger.error("refused model %s version %d: %s", name, version, exc)
            return VersionState(UNAVAILABLE, str(exc))
        try:
            # Building a session takes from milliseconds to minutes (TensorRT): off the loop.
            session = await asyncio.to_thread(OnnxSession, path, config, name)
        except ModelLoadError as exc:
            logger.error("%s", exc)
            return VersionState(UNAVAILABLE, str(exc))
        model = LoadedModel(
            name=name,
            version=version,
            path=path,
            config=config,
            session=session,
            metrics=self._metrics,
        )
        if verified is not None:
            model.set_verified(verified)
        logger.info("loaded model %s version %d on %s", name, version, session.provider_short_names)
        return VersionState(READY, model=model)

    async def _close_replaced(
        self, old: dict[int, VersionState], new: dict[int, VersionState]
    ) -> None:
        kept = {id(s.model) for s in new.values() if s.model is not None}
        stale = [s.model for s in old.values() if s.model is not None and id(s.model) not in kept]
        await asyncio.gather(*(m.close(self._drain_timeout_s) for m in stale))

    async def unload(self, name: str) -> None:
        """Mark every version unavailable, then close each after its requests finish."""
        if name not in self._table and name not in self.model_names():
            raise ModelNotFoundError(f"failed to unload '{name}', no version is available")
        async with self._locks.setdefault(name, asyncio.Lock()):
            old = self._table.get(name, {})
            self._table[name] = {v: VersionState(UNAVAILABLE, "unloaded") for v in old if v > 0}
            await self._close_replaced(old, {})
            self._sources.pop(name, None)
            await asyncio.to_thread(self._prune_overrides, name)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The loaded model version to serve; ``None`` picks the highest ready version."""
        versions = self._table.get(name)
        if versions is None:
            if name in self.model_names():
                raise ModelNotReadyError(
                    f"Request for unknown model: '{name}' has no available versions",
                    hint="load it through the repository API",
                )
            raise unknown_model(name)
        if version is None or version == "":
            for number in sorted(versions, reverse=True):
                state = versions[number]
                if state.model is not None:
                    return state.model
            reasons = "; ".join(s.reason for s in versions.values() if s.reason)
            raise ModelNotReadyError(
                f"Request for unknown model: '{name}' has no available versions ({reasons})"
            )
        if not _VERSION.fullmatch(version):
            raise ModelNotFoundError(
                f"Request for unknown model: '{name}' version {version[:40]!r} is not found",
                hint="a version is a positive integer of ASCII digits",
            )
        number = int(version)
        # 0 is the model-level row of a model that failed before versions
        found = versions.get(number) if number > 0 else None
        if found is None:
            raise unknown_model(name, version)
        if found.model is None:
            raise ModelNotReadyError(
                f"model {name!r} version {version} is {found.state}: {found.reason}"
            )
        return found.model

    def ready_versions(self, name: str) -> list[LoadedModel]:
        """Ready versions of a model, ascending."""
        versions = self._table.get(name, {})
        return [versions[v].model for v in sorted(versions) if versions[v].model is not None]  # type: ignore[misc]

    def loaded(self) -> list[LoadedModel]:
        """Every ready model version."""
        return [m for name in sorted(self._table) for m in self.ready_versions(name)]

    def index(self, ready_only: bool = False) -> list[RepositoryModel]:
        """Every model of the repository and every version in the state table."""
        rows: list[RepositoryModel] = []
        for name in sorted(set(self.model_names()) | set(self._table)):
            versions = self._table.get(name)
            if not versions:
                if not ready_only:
                    rows.append(RepositoryModel(name, "", UNAVAILABLE, "not loaded"))
                continue
            for number in sorted(versions):
                state = versions[number]
                if ready_only and state.state != READY:
                    continue
                label = str(number) if number > 0 else ""
                rows.append(RepositoryModel(name, label, state.state, state.reason))
        return rows

    async def close(self) -> None:
        """Close every loaded version (the data plane drained requests first)."""
        models = self.loaded()
        self._table = {
            n: {v: VersionState(UNAVAILABLE, "server stopped") for v in vs}
            for n, vs in self._table.items()
        }
        await asyncio.gather(*(m.close(0.0) for m in models))
        if self._own_override_root and self._override_root is not None:
            await asyncio.to_thread(shutil.rmtree, self._override_root, True)
