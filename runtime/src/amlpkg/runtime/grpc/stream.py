"""``ModelStreamInfer``: requests of one stream run concurrently, answered as they finish.

As Triton does, a response carries the request's ``id`` so the client can match it,
and a failed request yields an ``error_message`` while the stream stays open. Running
the stream's requests concurrently lets them share a dynamic batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from amlpkg.runtime.codecs.grpc_messages import decode_infer_request, encode_infer_response
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.faults import public_error
from amlpkg.runtime.protocol import grpc_service_pb2 as pb

log = logging.getLogger("amlpkg.runtime.grpc")


async def _answer(dataplane: DataPlane, request: Any, trace: Mapping[str, str] | None) -> Any:
    try:
        decoded = decode_infer_request(request, dataplane.limits, dataplane.shared_memory)
        response = await dataplane.infer(decoded, trace_context=trace)
        return pb.ModelStreamInferResponse(infer_response=encode_infer_response(response))
    except Exception as exc:
        message = public_error(exc, dataplane.redact).message
    echo = pb.ModelInferResponse(
        model_name=request.model_name, model_version=request.model_version, id=request.id
    )
    return pb.ModelStreamInferResponse(error_message=message, infer_response=echo)


async def stream_infer(
    dataplane: DataPlane, requests: AsyncIterator[Any], trace: Mapping[str, str] | None
) -> AsyncIterator[Any]:
    """Answer every request of ``requests``; yields responses in completion order."""
    done: asyncio.Queue[Any] = asyncio.Queue()
    running: set[asyncio.Task[None]] = set()
    finished = object()

    async def answer(request: Any) -> None:
        done.put_nowait(await _answer(dataplane, request, trace))

    async def read() -> None:
        try:
            async for request in requests:
                task = asyncio.create_task(answer(request))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            done.put_nowait(finished)

    reader = asyncio.create_task(read())
    try:
        while (item := await done.get()) is not finished:
            yield item
        await reader  # re-raises a failure of the request stream itself
    finally:
        # The client went away or the server is stopping: drop what is still running.
        reader.cancel()
        for task in list(running):
            task.cancel()
