"""``python -m amlpkg.runtime``: run the scoring server (no CLI extras needed).

Options given here override ``AMLPKG_SERVER_*`` environment variables, which override
the defaults (see :class:`amlpkg.runtime.settings.ServerSettings`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amlpkg.errors import AmlpkgError


def build_parser() -> argparse.ArgumentParser:
    """The command line of the server process."""
    parser = argparse.ArgumentParser(
        prog="python -m amlpkg.runtime",
        description="KServe v2 (Open Inference Protocol) server on ONNX Runtime.",
    )
    add = parser.add_argument
    add("--model-repository", type=Path, help="Triton-layout model repository folder")
    add("--host", help="address to bind (default 0.0.0.0)")
    add("--http-port", type=int, help="REST port (default 8000; 0 picks a free one)")
    add("--grpc-port", type=int, help="gRPC port (default 8001; 0 picks a free one)")
    add("--metrics-port", type=int, help="extra port serving only /metrics")
    add("--max-request-size", type=int, help="largest REST body in bytes (413 above)")
    add("--grpc-max-message-size", type=int, help="largest gRPC message in bytes")
    add("--max-json-size", type=int, help="largest JSON part of a REST request in bytes")
    add("--max-elements", type=int, help="most tensor elements one request may declare")
    add("--max-header-size", type=int, help="largest HTTP request line + headers in bytes")
    add("--http-header-timeout", type=float, help="seconds to send a request's headers")
    add("--http-read-timeout", type=float, help="seconds without a byte of an incomplete body")
    add(
        "--strict-readiness",
        type=lambda v: v.lower() in ("1", "true", "yes", "on"),
        help="ready only when every model is ready (default true; false: once tried)",
    )
    add("--tls-certfile", type=Path, help="PEM certificate: enables TLS on HTTP and gRPC")
    add("--tls-keyfile", type=Path, help="PEM private key of --tls-certfile")
    add("--shutdown-timeout", type=float, help="seconds to drain in-flight requests on SIGTERM")
    add("--log-level", help="logging level (default info)")
    add(
        "--require-signature",
        action="store_true",
        default=None,
        help="load only versions whose model.sig verifies against --trust",
    )
    add("--trust", type=Path, help="signer's PEM public key or PEM root chain")
    add("--state-dir", type=Path, help="folder kept across restarts (signed version floors)")
    add("--workers", type=int, help="server processes sharing the ports (default 1)")
    add("--cpus", type=int, help="CPUs to use (default: the cgroup quota or affinity)")
    add(
        "--output-summaries",
        action="store_true",
        default=None,
        help="count binned output summaries per version (the rollout gate's drift)",
    )
    # The token is read from AMLPKG_SERVER_AUTH_TOKEN only: a command line is visible to
    # every user of the machine (ps).
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse options and run the server until SIGTERM/SIGINT."""
    from amlpkg.runtime.server import serve
    from amlpkg.runtime.settings import load_settings

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(**vars(args))
        serve(settings)
    except AmlpkgError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
