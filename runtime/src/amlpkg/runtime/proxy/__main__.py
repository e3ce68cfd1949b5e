"""``python -m amlpkg.runtime.proxy serve|ctl``: run the proxy, or send it one request.

``serve --state DIR [--http-port 8000 --grpc-port 8001 --preview-http-port 9000
--preview-grpc-port 9001]`` runs :func:`amlpkg.runtime.proxy.server.serve`.
``ctl --state DIR JSON`` sends one control request (see :mod:`.server`) and prints
the JSON answer; the exit status is 0 when the proxy answered ``ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from amlpkg.runtime.proxy.server import call, serve


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m amlpkg.runtime.proxy")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the proxy")
    run.add_argument("--state", type=Path, required=True, help="routes file and control socket")
    run.add_argument("--host", default="0.0.0.0")
    run.add_argument("--http-port", type=int, default=8000)
    run.add_argument("--grpc-port", type=int, default=8001)
    run.add_argument("--preview-http-port", type=int, default=9000)
    run.add_argument("--preview-grpc-port", type=int, default=9001)
    ctl = commands.add_parser("ctl", help="send one control request, print the answer")
    ctl.add_argument("--state", type=Path, required=True)
    ctl.add_argument("request", help="the request as a JSON object")
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(
            serve(
                args.state,
                host=args.host,
                http_port=args.http_port,
                grpc_port=args.grpc_port,
                preview_http_port=args.preview_http_port,
                preview_grpc_port=args.preview_grpc_port,
            )
        )
        return 0
    try:
        answer = call(args.state, json.loads(args.request))
    except (OSError, ValueError) as exc:
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
