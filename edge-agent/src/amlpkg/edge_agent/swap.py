"""Verified model swap without failing a request, on whatever serves the models.

Steps for a new desired model: fetch and verify (digest, signature) -> load it as a
hidden candidate model (``_candidate``) beside the serving one and run a smoke
inference built from its metadata -> serve it under its own name (the runtime
builds the new session first, switches in one assignment and closes the old version
once its in-flight requests finish) -> smoke-test the served model, pushing the
previous model back when that fails. Any failed step leaves (or puts back) the old
model serving and is recorded as ``last_error``.

The steps are written once here; a :class:`~amlpkg.edge_agent.backend.ScoringBackend`
says where they happen: the runtime in this process, or a separate scoring module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlpkg.edge_agent.backend import LocalBackend, ScoringBackend
from amlpkg.edge_agent.desired import DesiredModel
from amlpkg.edge_agent.download import fetch_model
from amlpkg.edge_agent.verify import verify_desired
from amlpkg.errors import (
    AmlpkgError,
    FailedPreconditionError,
    InvalidArgumentError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnavailableError,
)
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.signing import Trust

log = logging.getLogger(__name__)
CANDIDATE = "_candidate"
# Where a model and its signature are fetched from: a change alone needs no swap.
_LOCATIONS = {"url", "oci", "signature", "signature_url", "release_url"}


@dataclass
class SwapState:
    """What the device serves now, what it served before, and the last failure."""

    current: DesiredModel | None = None
    previous: DesiredModel | None = None
    last_error: str | None = None
    last_swap: float | None = None
    last_verification: dict[str, Any] | None = None
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (also what is persisted)."""
        return {
            "current": self.current.model_dump() if self.current else None,
            "previous": self.previous.model_dump() if self.previous else None,
            "last_error": self.last_error,
            "last_swap": self.last_swap,
            "last_verification": self.last_verification,
        }


class ModelSwapper:
    """Applies desired models to one scoring backend.

    ``ModelSwapper(dataplane, repository, state_dir)`` serves through an in-process
    data plane over ``repository``; ``ModelSwapper(backend, None, state_dir)`` through
    any :class:`ScoringBackend` (e.g. a remote scoring module). ``candidate_check``
    loads and smoke-tests each new model under a hidden name before it serves.
    """

    def __init__(
        self,
        backend: ScoringBackend | DataPlane,
        repository: Path | None,
        state_dir: Path,
        *,
        public_key_pem: bytes | None = None,
        candidate_check: bool = True,
        trust: Trust | None = None,
    ) -> None:
        if isinstance(backend, DataPlane):
            if repository is None:
                raise InvalidArgumentError("an in-process data plane needs its repository folder")
            backend = LocalBackend(backend, repository)
        self.backend: ScoringBackend = backend
        self.state_dir = state_dir
        self.public_key_pem = public_key_pem
        self.candidate_check = candidate_check
        # With a trust anchor, a model swaps in only when its signature bundle verifies.
        self.trust = trust
        self.min_version: int | None = None  # the twin's; set before each apply
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
            last_verification=data.get("last_verification"),
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
            if current is not None and current.model_dump(exclude=_LOCATIONS) == desired.model_dump(
                exclude=_LOCATIONS
            ):
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
        """Load the current model again (in-process: from disk, e.g. a changed config.yaml)."""
        current = self.state.current
        if current is None:
            raise FailedPreconditionError("no model is being served yet")
        path = await self._fetch(current)
        await self.backend.reload(current.name, int(current.version), path, current.config)

    async def resync(self) -> bool:
        """Serve the current model again when the backend does not serve that version.

        A restarted scoring module serves nothing, or the model baked into its image.
        """
        async with self._lock:
            current = self.state.current
            if current is None or await self.backend.is_ready(current.name, current.version):
                return False
            log.warning("the scoring backend does not serve %s: pushing it again", current.ref)
            path = await self._fetch(current)
            await self.backend.serve(current.name, int(current.version), path, current.config)
            return True

    async def _fetch(self, desired: DesiredModel) -> Path:
        return await asyncio.to_thread(
            fetch_model,
            desired,
            self.state_dir / "staging",
            self.state_dir / "models",
            public_key_pem=self.public_key_pem,
        )

    async def _verify(self, desired: DesiredModel, path: Path) -> None:
        """Refuse a version below min_version; with trust, check its signature offline."""
        outcome: dict[str, Any] = {"model": desired.ref, "time": time.time()}
        try:
            if self.min_version is not None and int(desired.version) < self.min_version:
                raise FailedPreconditionError(
                    f"desired model {desired.ref} is below min_version {self.min_version}",
                    hint="the twin asks for an older version than it allows",
                )
            if self.trust is not None:
                verified = await asyncio.to_thread(
                    verify_desired,
                    desired,
                    path,
                    self.trust,
                    self.state_dir / "verify",
                    self.min_version,
                )
                outcome.update(verified.parameters())
        except AmlpkgError as exc:
            outcome.update(signature_verified="false", error=exc.message)
            raise
        finally:
            self.state.last_verification = outcome

    async def _swap(self, desired: DesiredModel) -> None:
        path = await self._fetch(desired)
        await self._verify(desired, path)
        if self.candidate_check:
            await self._check_candidate(desired, path)
        current = self.state.current
        await self.backend.serve(desired.name, int(desired.version), path, desired.config)
        try:
            await self.backend.smoke_test(desired.name)
        except AmlpkgError as exc:
            restored = await self._restore(current, desired)
            raise FailedPreconditionError(
                f"model {desired.ref} failed its smoke inference after the switch: {exc.message}",
                hint=f"{restored}; fix the model or its runtime config",
            ) from None
        if current is not None and current.name != desired.name:
            await self.backend.remove(current.name)
        self._prune_cache(keep={desired.sha256, *(m.sha256 for m in [current] if m)})

    async def _restore(self, current: DesiredModel | None, failed: DesiredModel) -> str:
        """Put the previous model back after a failed post-switch check; says what it did."""
        try:
            if current is None or current.name != failed.name:
                await self.backend.remove(failed.name)
                return (
                    "the failed model was removed"
                    if current is None
                    else (f"{current.ref} kept serving")
                )
            path = await self._fetch(current)
            await self.backend.serve(current.name, int(current.version), path, current.config)
        except AmlpkgError as exc:
            log.error("rollback after a failed smoke test failed too: %s", exc)
            return f"rolling back failed too: {exc.message}"
        return f"rolled back to {current.ref}"

    async def _check_candidate(self, desired: DesiredModel, path: Path) -> None:
        """Load the model under a hidden name and run one inference on it."""
        try:
            await self.backend.serve(CANDIDATE, 1, path, desired.config)
            await self.backend.smoke_test(CANDIDATE)
        except (UnavailableError, UnauthenticatedError, PayloadTooLargeError):
            raise  # about reaching the scoring server, not the model: keep the hint
        except AmlpkgError as exc:
            raise FailedPreconditionError(
                f"model {desired.ref} failed its load/smoke check: {exc.message}",
                hint="fix the model or its runtime config; the old model keeps serving",
            ) from None
        finally:
            with contextlib.suppress(AmlpkgError):
                await self.backend.remove(CANDIDATE)

    def _prune_cache(self, keep: set[str]) -> None:
        for cached in (self.state_dir / "models").glob("*.onnx"):
            if cached.stem not in keep:
                cached.unlink(missing_ok=True)
