"""``python -m amlpkg.packager.targets.attach HOST CONTAINER``: run a created container.

The local process of a run on a remote engine (see :mod:`amlpkg.packager.targets.remote`):
it attaches to the container, starts it, copies its stdout and stderr to its own,
forwards SIGINT/SIGTERM to it, and exits with its exit code, as ``docker start --attach``
does, but through the docker SDK, so it reaches the engine the same way the build did
(paramiko reads ``~/.ssh`` from ``$HOME``; the OpenSSH client the docker CLI runs does not).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from amlpkg.errors import AmlpkgError
from amlpkg.packager.build.engine import docker_client

_EXIT_ENGINE_ERROR = 125  # what `docker run` reports when the engine failed, not the command


def attach(host: str, container: str) -> int:
    """Start ``container`` on the engine at ``host``, stream its output; its exit code."""
    client = docker_client(host=host)
    api: Any = client.api
    try:
        stream = api.attach(container, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        api.start(container)

        def forward(signum: int, frame: FrameType | None) -> None:
            del frame
            api.kill(container, signal=signal.Signals(signum).name)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, forward)
        for out, err in stream:
            if out:
                sys.stdout.buffer.write(out)
                sys.stdout.buffer.flush()
            if err:
                sys.stderr.buffer.write(err)
                sys.stderr.buffer.flush()
        return int(api.wait(container)["StatusCode"])
    finally:
        client.close()


def main(argv: list[str]) -> int:
    """Entry point: ``HOST CONTAINER``."""
    if len(argv) != 2:
        print("usage: python -m amlpkg.packager.targets.attach HOST CONTAINER", file=sys.stderr)
        return 2
    try:
        return attach(argv[0], argv[1])
    except AmlpkgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_ENGINE_ERROR
    except Exception as exc:  # the engine or the connection failed mid-run
        print(f"error: the container {argv[1]} on {argv[0]} failed: {exc}", file=sys.stderr)
        return _EXIT_ENGINE_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
