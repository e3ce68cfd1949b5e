"""The KServe v2 gRPC transport: a grpc.aio servicer of ``inference.GRPCInferenceService``."""

from amlpkg.runtime.grpc.servicer import InferenceServicer, create_grpc_server

__all__ = ["InferenceServicer", "create_grpc_server"]
