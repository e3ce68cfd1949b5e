"""Transport-free request and response types of the data plane.

The REST and gRPC adapters decode the wire format into these (tensors as numpy
arrays, already shaped and typed) and encode the data plane's answers back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as the server describes it; ``-1`` marks a dynamic dim."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(slots=True)
class InferInput:
    """One decoded input tensor: ``data`` has ``shape`` and the dtype of ``datatype``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for, with how it wants it encoded."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def binary_data(self) -> bool | None:
        """Triton's ``binary_data`` parameter, or None when the client did not say."""
        value = self.parameters.get("binary_data")
        return None if value is None else bool(value)


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request. ``outputs`` None means every model output."""

    model_name: str
    model_version: str | None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferOutput:
    """One output tensor of a response."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferResponse:
    """The answer to an :class:`InferRequest`, outputs in the order requested."""

    model_name: str
    model_version: str
    outputs: list[InferOutput]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """``GET /v2``: server name, version and the protocol extensions it supports."""

    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """``GET /v2/models/{name}[/versions/{v}]``."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RepositoryModel:
    """One row of the repository index: state is READY, UNAVAILABLE, LOADING or UNLOADING."""

    name: str
    version: str
    state: str
    reason: str = ""
