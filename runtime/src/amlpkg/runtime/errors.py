"""Runtime errors, on the one amlpkg error tree, with their gRPC status codes.

Each class names its HTTP status (inherited from :mod:`amlpkg.errors`); the
gRPC code comes from :data:`GRPC_CODE_BY_HTTP_STATUS`, the one table both
transports share. Messages name the model, input and expected shape/type so the
caller can fix the request.
"""

from __future__ import annotations

from amlpkg.errors import (
    AmlpkgError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "GRPC_CODE_BY_HTTP_STATUS",
    "AmlpkgError",
    "InferenceFailedError",
    "InvalidInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelRunError",
    "PayloadTooLargeError",
    "QueueFullError",
    "UnauthenticatedError",
    "grpc_code_name",
]


class InvalidInputError(InvalidArgumentError):
    """A request does not match the model: wrong name, shape, datatype or element count."""


class ModelNotFoundError(NotFoundError):
    """No such model or version in the repository."""


class ModelNotReadyError(FailedPreconditionError):
    """The model exists but is not loaded (unloaded, loading or failed to load)."""

    http_status = 400


class ModelLoadError(FailedPreconditionError):
    """ONNX Runtime could not load the model, or the providers asked for are missing."""


class ModelControlDisabledError(FailedPreconditionError):
    """Loading and unloading through the API is off (several worker processes)."""

    http_status = 400


class QueueFullError(UnavailableError):
    """The model's request queue is full; the client should back off and retry."""


class ModelRunError(InvalidInputError):
    """ONNX Runtime refused to run the request's data (e.g. an index out of range).

    The request passed every check the server can make, so what failed is the data
    against the model: the caller's to fix, not a server fault (400, not 500).
    """


class InferenceFailedError(InternalError):
    """The server failed while running a valid request (a server or model-config fault)."""


# HTTP status -> grpc.StatusCode member name (kept as names so this module needs no grpc).
GRPC_CODE_BY_HTTP_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def grpc_code_name(error: AmlpkgError) -> str:
    """The gRPC status code name for an amlpkg error."""
    if isinstance(error, FailedPreconditionError) and error.http_status == 400:
        # Triton answers UNAVAILABLE for a model that is not ready.
        if isinstance(error, ModelNotReadyError):
            return "UNAVAILABLE"
        return "FAILED_PRECONDITION"
    return GRPC_CODE_BY_HTTP_STATUS.get(error.http_status, "INTERNAL")
