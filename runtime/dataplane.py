"""The transport-free data plane: every V2 operation, once, for REST and gRPC alike.

CONTRACT (the REST and gRPC adapters are written against exactly these methods):
all methods are coroutines; failures raise :mod:`amlpkg.runtime.errors` classes,
which the adapters map to HTTP statuses / gRPC codes. Dict answers are in the
proto-JSON form of Triton's messages (snake_case proto field names), so the REST
adapter returns them as JSON and the gRPC adapter fills the proto with
``google.protobuf.json_format.ParseDict``.
"""

from __future__ import annotations

from typing import Any

from amlpkg.runtime.types import (
    InferRequest,
    InferResponse,
    ModelMetadata,
    RepositoryModel,
    ServerMetadata,
)


class DataPlane:
    """Placeholder of the interface; the implementation replaces the bodies."""

    async def live(self) -> bool:
        """Server liveness."""
        raise NotImplementedError

    async def ready(self) -> bool:
        """Server readiness: started and every model that should load has been tried."""
        raise NotImplementedError

    async def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether a model (or one version of it) is loaded and can infer."""
        raise NotImplementedError

    async def server_metadata(self) -> ServerMetadata:
        """``GET /v2``."""
        raise NotImplementedError

    async def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """``GET /v2/models/{name}[/versions/{version}]``."""
        raise NotImplementedError

    async def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Triton ``ModelConfig`` as a dict (``GET /v2/models/{name}/config``)."""
        raise NotImplementedError

    async def model_statistics(
        self, name: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """Triton ``ModelStatisticsResponse`` as a dict: ``{"model_stats": [...]}``."""
        raise NotImplementedError

    async def repository_index(self, ready_only: bool = False) -> list[RepositoryModel]:
        """Every model version the repository holds, with its state."""
        raise NotImplementedError

    async def load_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        """Load (or reload) a model from the repository."""
        raise NotImplementedError

    async def unload_model(self, name: str, unload_dependents: bool = False) -> None:
        """Unload every version of a model after its in-flight requests finish."""
        raise NotImplementedError

    async def infer(self, request: InferRequest) -> InferResponse:
        """Validate, queue (dynamic batching) and run one request."""
        raise NotImplementedError
