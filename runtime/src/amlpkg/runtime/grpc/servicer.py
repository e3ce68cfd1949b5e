"""``inference.GRPCInferenceService`` over the data plane (grpc.aio).

Every RPC that has a data-plane counterpart is served, system shared memory included;
CUDA shared memory, trace and log settings answer UNIMPLEMENTED with a message. Errors
become the gRPC status of their class through :func:`amlpkg.runtime.faults.public_error`,
the one mapping REST uses too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from amlpkg.errors import AmlpkgError
from amlpkg.runtime.auth import check_credentials
from amlpkg.runtime.codecs.grpc_messages import (
    decode_infer_request,
    encode_infer_response,
    parameters_to_dict,
)
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.faults import public_error
from amlpkg.runtime.grpc.stream import stream_infer
from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc

log = logging.getLogger("amlpkg.runtime.grpc")
T = TypeVar("T")
_TRACE_KEYS = ("traceparent", "tracestate")


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


def _trace_context(metadata: dict[str, str]) -> dict[str, str] | None:
    found = {k: metadata[k] for k in _TRACE_KEYS if k in metadata}
    return found or None


def _unimplemented(what: str) -> Callable[..., Awaitable[Any]]:
    async def handler(self: InferenceServicer, request: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by the amlpkg runtime"
        )

    return handler


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Serves the V2 gRPC API for one :class:`DataPlane`."""

    def __init__(self, dataplane: DataPlane, *, auth_token: str | None = None) -> None:
        self.dataplane = dataplane
        self._token = auth_token

    def _check_auth(self, metadata: dict[str, str]) -> None:
        if self._token is None:
            return
        check_credentials(
            metadata.get("authorization"),
            metadata.get("x-api-key"),
            self._token.encode(),
            where="metadata",
        )

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        work: Callable[[dict[str, str]], Awaitable[T]],
        *,
        auth: bool = True,
    ) -> T:
        """Run one RPC body, mapping errors to gRPC statuses."""
        metadata = _metadata(context)
        try:
            if auth:
                self._check_auth(metadata)
            return await work(metadata)
        except Exception as exc:
            public = public_error(exc, self.dataplane.redact)
            code, message = grpc.StatusCode[public.grpc_code], public.message
        await context.abort(code, message)
        raise AssertionError("context.abort returned")  # abort always raises

    async def ServerLive(self, request: Any, context: Any) -> Any:
        """Server liveness (no credentials needed)."""
        dp = self.dataplane
        return await self._call(
            context, lambda _: _async(pb.ServerLiveResponse, live=dp.live()), auth=False
        )

    async def ServerReady(self, request: Any, context: Any) -> Any:
        """Server readiness (no credentials needed)."""
        dp = self.dataplane
        return await self._call(
            context, lambda _: _async(pb.ServerReadyResponse, ready=dp.ready()), auth=False
        )

    async def ModelReady(self, request: Any, context: Any) -> Any:
        """Whether a model (version) can infer."""
        ready = self.dataplane.model_ready
        return await self._call(
            context,
            lambda _: _async(
                pb.ModelReadyResponse, ready=ready(request.name, request.version or None)
            ),
        )

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        """Server name, version and extensions."""

        async def work(_: dict[str, str]) -> Any:
            meta = await self.dataplane.server_metadata()
            return pb.ServerMetadataResponse(
                name=meta.name, version=meta.version, extensions=meta.extensions
            )

        return await self._call(context, work)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """A model's versions, platform, inputs and outputs."""

        async def work(_: dict[str, str]) -> Any:
            meta = await self.dataplane.model_metadata(request.name, request.version or None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta.name,
                versions=meta.versions,
                platform=meta.platform,
                inputs=[
                    tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs
                ],
                outputs=[
                    tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs
                ],
            )

        return await self._call(context, work)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        """One inference: raw or typed inputs in, raw outputs out."""

        async def work(metadata: dict[str, str]) -> Any:
            dp = self.dataplane
            decoded = decode_infer_request(request, dp.limits, dp.shared_memory)
            response = await self.dataplane.infer(decoded, trace_context=_trace_context(metadata))
            return encode_infer_response(response)

        return await self._call(context, work)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        """Bidirectional stream: one response (or error message) per request, as each finishes."""
        metadata = _metadata(context)
        try:
            self._check_auth(metadata)
        except AmlpkgError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        async for response in stream_infer(
            self.dataplane, request_iterator, _trace_context(metadata)
        ):
            yield response

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        """Triton's model configuration."""

        async def work(_: dict[str, str]) -> Any:
            config = await self.dataplane.model_config(request.name, request.version or None)
            message = pb.ModelConfigResponse()
            json_format.ParseDict(config, message.config, ignore_unknown_fields=True)
            return message

        return await self._call(context, work)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        """Triton's per-model inference statistics."""

        async def work(_: dict[str, str]) -> Any:
            stats = await self.dataplane.model_statistics(
                request.name or None, request.version or None
            )
            return json_format.ParseDict(
                stats, pb.ModelStatisticsResponse(), ignore_unknown_fields=True
            )

        return await self._call(context, work)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        """Every model version in the repository, with its state."""

        async def work(_: dict[str, str]) -> Any:
            rows = await self.dataplane.repository_index(ready_only=request.ready)
            index = pb.RepositoryIndexResponse.ModelIndex
            return pb.RepositoryIndexResponse(
                models=[
                    index(name=r.name, version=r.version, state=r.state, reason=r.reason)
                    for r in rows
                ]
            )

        return await self._call(context, work)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        """Load (or reload) a model."""

        async def work(_: dict[str, str]) -> Any:
            params = parameters_to_dict(request.parameters)
            await self.dataplane.load_model(request.model_name, params or None)
            return pb.RepositoryModelLoadResponse()

        return await self._call(context, work)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        """Unload every version of a model."""

        async def work(_: dict[str, str]) -> Any:
            params = parameters_to_dict(request.parameters)
            await self.dataplane.unload_model(
                request.model_name, bool(params.get("unload_dependents", False))
            )
            return pb.RepositoryModelUnloadResponse()

        return await self._call(context, work)

    async def SystemSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        """Registered system shared-memory regions (all, or the one named)."""

        async def work(_: dict[str, str]) -> Any:
            status = pb.SystemSharedMemoryStatusResponse
            return status(
                regions={
                    r.name: status.RegionStatus(
                        name=r.name, key=r.key, offset=r.offset, byte_size=r.byte_size
                    )
                    for r in self.dataplane.shared_memory.status(request.name or None)
                }
            )

        return await self._call(context, work)

    async def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        """Register a POSIX shared-memory object (``/dev/shm``) as a named region."""

        async def work(_: dict[str, str]) -> Any:
            self.dataplane.shared_memory.register(
                request.name, request.key, request.offset, request.byte_size
            )
            return pb.SystemSharedMemoryRegisterResponse()

        return await self._call(context, work)

    async def SystemSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        """Unregister one region, or all when no name is given."""

        async def work(_: dict[str, str]) -> Any:
            self.dataplane.shared_memory.unregister(request.name or None)
            return pb.SystemSharedMemoryUnregisterResponse()

        return await self._call(context, work)

    CudaSharedMemoryStatus = _unimplemented("CUDA shared memory")
    CudaSharedMemoryRegister = _unimplemented("CUDA shared memory")
    CudaSharedMemoryUnregister = _unimplemented("CUDA shared memory")
    TraceSetting = _unimplemented("trace settings over gRPC")
    LogSettings = _unimplemented("log settings over gRPC")


async def _async(factory: Callable[..., T], **awaitables: Awaitable[Any]) -> T:
    """Await keyword values, then build the message (keeps one-line RPCs one line)."""
    values = {key: await value for key, value in awaitables.items()}
    return factory(**values)


def create_grpc_server(
    dataplane: DataPlane,
    *,
    host: str,
    port: int,
    max_message_size: int,
    auth_token: str | None = None,
    tls: tuple[bytes, bytes] | None = None,
    options: Sequence[tuple[str, int]] = (),
) -> tuple[grpc.aio.Server, int]:
    """Build (not start) a grpc.aio server; returns it and the bound port (0 picks one).

    ``tls`` is ``(private_key_pem, certificate_chain_pem)``; ``options`` are more gRPC
    channel arguments (keepalive, connection idle/age, metadata size).
    """
    # A later option of the same name wins (``grpc.so_reuseport``: 1 for worker processes).
    merged = dict(
        [
            ("grpc.max_receive_message_length", max_message_size),
            ("grpc.max_send_message_length", max_message_size),
            ("grpc.so_reuseport", 0),
            *options,
        ]
    )
    server = grpc.aio.server(options=list(merged.items()))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, auth_token=auth_token), server
    )
    address = f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
    return server, bound
