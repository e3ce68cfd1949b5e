"""The switch in front of a deployment's revisions: a blue/green and weighted TCP proxy.

:mod:`.switching` is the proxy itself (HTTP/1.1 moved at request boundaries, gRPC
drained with GOAWAY, routes by weight); :mod:`.server` runs it as a process of its
own with a unix-socket control channel and routes that survive a restart, which is
what a Docker deployment runs on its host (``python -m amlpkg.runtime.proxy``).
Standard library only, so it runs from any scoring image.
"""

from amlpkg.runtime.proxy.switching import Backend, Route, SwitchingProxy

__all__ = ["Backend", "Route", "SwitchingProxy"]
