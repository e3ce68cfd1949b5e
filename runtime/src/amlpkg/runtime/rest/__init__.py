"""The KServe v2 REST transport: a raw ASGI application over the data plane."""

from amlpkg.runtime.rest.app import RestApp, metrics_app

__all__ = ["RestApp", "metrics_app"]
