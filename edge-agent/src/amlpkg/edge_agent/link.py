"""What the agent needs from its control link: IoT Hub (:mod:`hub`) or standalone polling."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from amlpkg.edge_agent.outbox import OutboxMessage

DesiredHandler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
"""Called with a desired-properties patch (or the full desired document)."""
MethodHandler = Callable[[str, Any], Coroutine[Any, Any, tuple[int, Any]]]
"""Called with a direct method's name and payload; returns (status, payload)."""


class Link(Protocol):
    """A control link: desired state in, reported state and telemetry out."""

    async def start(self, on_desired: DesiredHandler, on_method: MethodHandler) -> None:
        """Connect (may fail when offline: the agent retries) and install the handlers."""

    async def get_desired(self) -> dict[str, Any]:
        """The full desired document; raises :class:`UnavailableError` when unreachable."""

    async def report(self, patch: dict[str, Any]) -> None:
        """Patch the reported properties; raises :class:`UnavailableError` when offline."""

    async def send(self, message: OutboxMessage) -> None:
        """Deliver one telemetry message; returns only once the far end acknowledged it."""

    async def close(self) -> None:
        """Disconnect and release the link."""
