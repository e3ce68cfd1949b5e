"""Wire codecs: V2 JSON with Triton's binary tensor extension (REST) and gRPC messages.

Each codec turns the wire format into :class:`amlpkg.runtime.types.InferRequest` (numpy
arrays already shaped and typed) and an :class:`InferResponse` back into wire bytes. They
check structure (JSON shape, element counts, byte sizes); the data plane checks the
request against the model.
"""
