"""The IoT Hub link: ``azure-iot-device``'s asyncio module client behind :class:`Link`.

Inside IoT Edge the client comes from the module's environment; outside it from a
connection string and a CA file (``server_verification_cert``). Every SDK call is
bounded by a timeout (``get_twin()`` has none of its own) and SDK errors become
:class:`UnavailableError` so the agent keeps running offline and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from azure.iot.device import Message, MethodRequest, MethodResponse
from azure.iot.device.aio import IoTHubModuleClient

from amlpkg.edge_agent.link import DesiredHandler, MethodHandler
from amlpkg.edge_agent.outbox import OutboxMessage
from amlpkg.errors import InvalidArgumentError, UnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")


class HubLink:
    """IoT Hub module client: twin, direct methods and telemetry on a module output."""

    def __init__(
        self, client: IoTHubModuleClient, *, output: str = "telemetry", timeout_s: float = 15.0
    ) -> None:
        self._client = client
        self.output = output
        self.timeout_s = timeout_s

    @classmethod
    def from_edge_environment(cls, **options: Any) -> HubLink:
        """Inside an IoT Edge module (the edge runtime sets the environment)."""
        try:
            client = IoTHubModuleClient.create_from_edge_environment(connection_retry=True)
        except Exception as exc:
            raise InvalidArgumentError(
                f"cannot create the IoT Edge module client: {exc}",
                hint="outside IoT Edge pass --connection-string and --ca-file instead",
            ) from None
        return cls(client, **options)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, ca_file: Path | None = None, **options: Any
    ) -> HubLink:
        """From a module connection string (``HostName=...;DeviceId=...;ModuleId=...``)."""
        cert = ca_file.read_text() if ca_file is not None else None
        try:
            client = IoTHubModuleClient.create_from_connection_string(
                connection_string,
                server_verification_cert=cert,
                connection_retry=True,
                connection_retry_interval=1,
                keep_alive=10,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                f"invalid IoT Hub module connection string: {exc}",
                hint="use HostName=...;DeviceId=...;ModuleId=...;SharedAccessKey=...",
            ) from None
        return cls(client, **options)

    async def _bounded(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            raise UnavailableError(
                f"IoT Hub did not answer {what} within {self.timeout_s:.0f}s",
                hint="the device is offline or the hub is unreachable; the agent retries",
            ) from None
        except Exception as exc:  # the SDK's own connection/operation errors
            raise UnavailableError(f"IoT Hub {what} failed: {exc!r}") from None

    async def start(self, on_desired: DesiredHandler, on_method: MethodHandler) -> None:
        """Install the twin and method handlers, then connect."""

        # The SDK runs coroutine handlers on its own handler loop (another thread); the
        # data plane must only be touched from the agent's loop, so hop over to it.
        agent_loop = asyncio.get_running_loop()

        async def on_agent_loop(call: Coroutine[Any, Any, T]) -> T:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, agent_loop))

        async def desired_patch(patch: dict[str, Any]) -> None:
            await on_agent_loop(on_desired(patch))

        async def method(request: MethodRequest) -> None:
            status, payload = await on_agent_loop(on_method(request.name, request.payload))
            response = MethodResponse.create_from_method_request(request, status, payload)
            try:
                await self._bounded("method response", self._client.send_method_response(response))
            except UnavailableError as exc:
                log.warning("%s", exc)

        # Connect first: installing a handler subscribes, which fails while offline.
        await self._bounded("connect", self._client.connect())
        try:
            self._client.on_twin_desired_properties_patch_received = desired_patch
            self._client.on_method_request_received = method
        except Exception as exc:
            raise UnavailableError(f"IoT Hub subscriptions failed: {exc!r}") from None

    async def get_desired(self) -> dict[str, Any]:
        """The desired section of the module twin."""
        twin = await self._bounded("twin GET", self._client.get_twin())
        desired: dict[str, Any] = dict(twin.get("desired") or {})
        return desired

    async def report(self, patch: dict[str, Any]) -> None:
        """Patch the reported properties."""
        await self._bounded(
            "reported properties", self._client.patch_twin_reported_properties(patch)
        )

    async def send(self, message: OutboxMessage) -> None:
        """Send one telemetry message on the module output; returns after the PUBACK."""
        msg = Message(
            message.body.decode(),
            message_id=message.message_id,
            content_encoding="utf-8",
            content_type="application/json",
        )
        await self._bounded("telemetry send", self._client.send_message_to_output(msg, self.output))

    async def close(self) -> None:
        """Shut the client down (bounded: a dead broker must not hang the agent)."""
        try:
            await asyncio.wait_for(self._client.shutdown(), self.timeout_s)
        except Exception as exc:
            log.warning("IoT Hub client shutdown: %r", exc)
