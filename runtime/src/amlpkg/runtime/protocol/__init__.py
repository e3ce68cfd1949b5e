"""KServe v2 gRPC protocol: the .proto files and the code protoc generates from them.

``grpc_service_pb2`` / ``grpc_service_pb2_grpc`` / ``model_config_pb2`` are generated
and committed; :mod:`amlpkg.runtime.protocol.generate` rebuilds them.
"""
