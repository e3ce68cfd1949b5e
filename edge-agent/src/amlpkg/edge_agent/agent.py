"""The edge agent: verified swaps + reported state + store-and-forward telemetry.

Models are served by a separate scoring module when ``scoring_url`` is set (the IoT
Edge layout: the agent pushes each verified model to it with Triton's load call and
reads its ``/metrics``), else by a runtime in this process. One asyncio loop runs the
in-process scoring server (REST + gRPC) if any, the control link (IoT Hub or
standalone), a telemetry timer that appends to the on-disk outbox, and a
forwarder that drains the outbox in order, acknowledging each message only after
the link confirmed it. Every loop is bounded by the stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.edge_agent.backend import LocalBackend, ScoringBackend
from amlpkg.edge_agent.desired import DesiredModel, parse_desired
from amlpkg.edge_agent.link import Link
from amlpkg.edge_agent.outbox import Outbox
from amlpkg.edge_agent.retry import Backoff
from amlpkg.edge_agent.sampler import TelemetrySampler
from amlpkg.edge_agent.swap import ModelSwapper
from amlpkg.errors import AmlpkgError, UnavailableError
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.server import RunningServer, running
from amlpkg.runtime.settings import load_settings
from amlpkg.runtime.signing import Trust

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent process needs besides its link."""

    device_id: str
    state_dir: Path
    module_id: str = "amlpkg-edge-agent"
    deployment_id: str | None = None
    host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    telemetry_interval_s: float = 60.0
    outbox_max_bytes: int = 16 * 1024 * 1024
    public_key_pem: bytes | None = None
    trust: Path | None = None
    """PEM public key / root chain: swap in only models whose signature bundle verifies."""
    retry_interval_s: float = 2.0
    retry_max_s: float = 300.0
    """Longest wait between retries of a model download that failed (backoff, jittered)."""
    report_interval_s: float = 300.0
    scoring_url: str | None = None
    """A separate scoring module (``http://<module>:8000``); None runs one in-process."""
    scoring_token: str | None = None
    """Auth token of the scoring module (from the environment only)."""
    candidate_check: bool = True

    @property
    def repository(self) -> Path:
        """The local Triton-layout model repository."""
        return self.state_dir / "repository"


def _memory_rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target`` (a new dict)."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def _essentials(state: dict[str, Any]) -> dict[str, Any]:
    """The reported facts whose change is worth a twin update (not time, memory, disk)."""
    return {k: state.get(k) for k in ("model", "providers", "last_error")} | {
        "dropped": state.get("telemetry", {}).get("dropped")
    }


class EdgeAgent:
    """Runs until :meth:`request_stop`; see the module docstring."""

    def __init__(self, config: AgentConfig, link: Link) -> None:
        self.config = config
        self.link = link
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.server: RunningServer | None = None
        self.swapper: ModelSwapper | None = None
        self.outbox: Outbox | None = None
        self.telemetry_interval_s = config.telemetry_interval_s
        self._wake_forwarder = asyncio.Event()
        self._last_reported: dict[str, Any] | None = None
        self._desired_doc: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.Task[None] | None = None
        self.download: dict[str, Any] = {"attempts": 0, "next_retry_s": None, "last_error": None}

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (safe from a signal handler on the loop)."""
        self._stop.set()

    async def run(self) -> None:
        """Serve, follow the desired state and forward telemetry until stopped."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        with Outbox(
            cfg.state_dir / "outbox.db", cfg.device_id, max_bytes=cfg.outbox_max_bytes
        ) as box:
            self.outbox = box
            async with self._backend() as backend:
                self.swapper = ModelSwapper(
                    backend,
                    None,
                    cfg.state_dir,
                    public_key_pem=cfg.public_key_pem,
                    trust=Trust(cfg.trust) if cfg.trust is not None else None,
                    candidate_check=cfg.candidate_check,
                )
                tasks = [
                    asyncio.create_task(self._connect_and_sync(), name="sync"),
                    asyncio.create_task(
                        self._telemetry_loop(TelemetrySampler(backend.metric_families)),
                        name="telemetry",
                    ),
                    asyncio.create_task(self._forward_loop(), name="forward"),
                    asyncio.create_task(self._report_loop(), name="report"),
                ]
                self.started.set()
                try:
                    await self._stop.wait()
                finally:
                    if self._retry is not None:
                        tasks.append(self._retry)
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await self.link.close()

    @contextlib.asynccontextmanager
    async def _backend(self) -> AsyncIterator[ScoringBackend]:
        """The remote scoring module, or a runtime server in this process while it runs."""
        cfg = self.config
        if cfg.scoring_url:
            from amlpkg.edge_agent.remote import RemoteBackend

            yield RemoteBackend(cfg.scoring_url, token=cfg.scoring_token)
            return
        cfg.repository.mkdir(parents=True, exist_ok=True)
        settings = load_settings(
            model_repository=cfg.repository,
            host=cfg.host,
            http_port=cfg.http_port,
            grpc_port=cfg.grpc_port,
            shutdown_timeout=5,
        )
        # output summaries for the rollout gate's drift (a --scoring-url module counts
        # them when started with --output-summaries)
        dp = DataPlane.from_repository(cfg.repository, output_summaries=True)
        async with running(settings, dp) as server:
            self.server = server
            yield LocalBackend(dp, cfg.repository)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _connect_and_sync(self) -> None:
        """Wait for the scoring server, connect, then apply the full desired document once.

        Retries while either is offline: IoT Edge starts the modules in any order.
        """
        assert self.swapper is not None
        while not self._stop.is_set() and not await self.swapper.backend.live():
            log.warning("scoring module not answering yet; retrying")
            await self._sleep(self.config.retry_interval_s)
        while not self._stop.is_set():
            try:
                await self.link.start(self.on_desired, self.on_method)
                full = await self.link.get_desired()
                self._desired_doc = {}
                await self.on_desired(full)
                await self._resync()  # the desired model may be stored as served already
                return
            except UnavailableError as exc:
                log.warning("control link not available yet: %s", exc)
                await self._sleep(self.config.retry_interval_s)

    def _check_loop(self) -> None:
        # The data plane and the swapper belong to the loop that runs the agent.
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("edge agent handlers must run on the agent's event loop")

    async def on_desired(self, patch: dict[str, Any]) -> None:
        """A desired patch arrived: merge it, then swap when the result names a new model.

        IoT Hub sends only the properties that changed, so patches are merged into the
        last full document (JSON merge patch: ``null`` removes a key).
        """
        self._check_loop()
        assert self.swapper is not None
        self._desired_doc = merge_patch(self._desired_doc, patch)
        self._cancel_retry()  # the new desired state replaces a retry in progress
        try:
            desired = parse_desired(self._desired_doc)
            self.telemetry_interval_s = (
                desired.telemetry_interval_s or self.config.telemetry_interval_s
            )
            self.swapper.min_version = desired.min_version
            if desired.model is not None:
                await self.swapper.apply(desired.model)
        except UnavailableError as exc:
            # Offline or a cut download: try again later by itself, resuming the file.
            self.swapper.state.last_error = exc.message
            log.warning("desired model not fetched yet, will retry: %s", exc)
            if desired.model is not None:
                self._retry = asyncio.create_task(self._retry_apply(desired.model), name="retry")
        except AmlpkgError as exc:
            self.swapper.state.last_error = exc.message
            log.error("desired state not applied: %s", exc)
        await self.report()

    def _cancel_retry(self) -> None:
        if self._retry is not None and not self._retry.done():
            self._retry.cancel()
        self._retry = None
        self.download = {"attempts": 0, "next_retry_s": None, "last_error": None}

    async def _retry_apply(self, model: DesiredModel) -> None:
        """Retry a swap that failed for a transient reason, with backoff and jitter."""
        assert self.swapper is not None
        backoff = Backoff(self.config.retry_interval_s, self.config.retry_max_s)
        while not self._stop.is_set():
            delay = backoff.next_delay()
            self.download = {
                "attempts": backoff.attempts,
                "next_retry_s": round(delay, 3),
                "last_error": self.swapper.state.last_error,
            }
            await self.report()
            await self._sleep(delay)
            if self._stop.is_set():
                return
            try:
                await self.swapper.apply(model)
            except UnavailableError:
                continue
            except AmlpkgError as exc:  # a refusal (digest, signature): no point retrying
                log.error("desired model refused after %d retries: %s", backoff.attempts, exc)
                break
            else:
                log.info("desired model fetched after %d retries", backoff.attempts)
                break
        self.download = {**self.download, "next_retry_s": None}
        await self.report()

    async def on_method(self, name: str, payload: Any) -> tuple[int, Any]:
        """Direct methods: ``status``, ``reload``, ``rollback``."""
        self._check_loop()
        assert self.swapper is not None
        try:
            if name == "reload":
                await self.swapper.reload()
            elif name == "rollback":
                await self.swapper.rollback()
            elif name != "status":
                return 404, {"error": f"unknown method {name!r}; use status, reload or rollback"}
        except AmlpkgError as exc:
            return exc.http_status, {"error": exc.message, "hint": exc.hint}
        state = await self.reported()
        if name != "status":
            await self.report(state)
        return 200, state

    async def reported(self) -> dict[str, Any]:
        """The reported properties: model, providers in use, last error, disk, memory, queue."""
        assert self.swapper is not None and self.outbox is not None
        current = self.swapper.state.current
        providers: list[str] = []
        if current is not None:
            with contextlib.suppress(AmlpkgError):
                providers = await self.swapper.backend.providers(current.name)
        pending, pending_bytes = self.outbox.pending()
        disk = shutil.disk_usage(self.config.state_dir)
        return {
            "model": None
            if current is None
            else {"name": current.name, "version": current.version, "sha256": current.sha256},
            "providers": providers,
            "last_error": self.swapper.state.last_error,
            "last_swap": self.swapper.state.last_swap,
            # The device has no workspace: verification results reach the lineage from here.
            "verification": self.swapper.state.last_verification,
            "download": self.download,
            "disk": {"free_bytes": disk.free, "total_bytes": disk.total},
            "memory": {"rss_bytes": _memory_rss_bytes()},
            "telemetry": {
                "dropped": self.outbox.dropped,
                "pending": pending,
                "pending_bytes": pending_bytes,
            },
            "deployment": self.config.deployment_id,
            "time": time.time(),
        }

    async def report(self, state: dict[str, Any] | None = None) -> bool:
        """Send the reported properties; offline is logged, not fatal."""
        state = state or await self.reported()
        try:
            await self.link.report(state)
        except UnavailableError as exc:
            log.warning("reported properties not sent: %s", exc)
            return False
        self._last_reported = _essentials(state)
        return True

    async def _report_loop(self) -> None:
        """Report again when what matters changed (drops, model, errors) or every interval."""
        last_time = time.monotonic()
        while not self._stop.is_set():
            await self._sleep(min(self.config.retry_interval_s * 2, self.config.report_interval_s))
            if self._stop.is_set():
                return
            await self._resync()
            state = await self.reported()
            due = time.monotonic() - last_time >= self.config.report_interval_s
            if (due or _essentials(state) != self._last_reported) and await self.report(state):
                last_time = time.monotonic()

    async def _resync(self) -> None:
        """A restarted scoring module serves nothing: push the current model again."""
        assert self.swapper is not None
        try:
            await self.swapper.resync()
        except AmlpkgError as exc:
            self.swapper.state.last_error = f"re-serving the current model failed: {exc.message}"
            log.error("%s", self.swapper.state.last_error)

    async def _telemetry_loop(self, sampler: TelemetrySampler) -> None:
        assert self.outbox is not None
        last = time.monotonic()
        while not self._stop.is_set():
            # Short naps, so a new interval from the desired state applies at once.
            await self._sleep(
                min(1.0, max(0.0, last + self.telemetry_interval_s - time.monotonic()))
            )
            if self._stop.is_set():
                return
            if time.monotonic() - last < self.telemetry_interval_s:
                continue
            last = time.monotonic()
            record = await sampler.sample()
            record["deployment"] = self.config.deployment_id
            record["module"] = self.config.module_id
            try:
                await asyncio.to_thread(self.outbox.append, record)
            except AmlpkgError as exc:  # e.g. a full disk: keep serving, try again next time
                log.error("telemetry not queued: %s", exc)
                continue
            self._wake_forwarder.set()

    async def _forward_loop(self) -> None:
        """Drain the outbox in order; a failed send keeps the message and retries later."""
        assert self.outbox is not None
        while not self._stop.is_set():
            batch = await asyncio.to_thread(self.outbox.peek, 50)
            if not batch:
                self._wake_forwarder.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_forwarder.wait(), 1.0)
                continue
            for message in batch:
                try:
                    await self.link.send(message)
                except UnavailableError as exc:
                    log.info("telemetry kept in the outbox (%s)", exc)
                    await self._sleep(self.config.retry_interval_s)
                    break
                await asyncio.to_thread(self.outbox.ack, message.seq)
