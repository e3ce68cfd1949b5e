"""``amlpkg-edge-agent`` / ``python -m amlpkg.edge_agent``: run the edge agent module.

Link selection: ``--standalone SOURCE`` polls a desired-state file or URL; else
``AMLPKG_EDGE_CONNECTION_STRING`` (+ ``--ca-file``) connects to IoT Hub; else,
inside IoT Edge (``IOTEDGE_WORKLOADURI`` set), the module client comes from the
edge environment. The connection string is read from the environment only: a
command line is visible to every user of the machine.

Scoring: ``--scoring-url`` / ``AMLPKG_EDGE_SCORING_URL`` names a separate scoring
module (``python -m amlpkg.runtime``, as the IoT Edge manifest deploys it) that the
agent pushes verified models to (with ``AMLPKG_EDGE_SCORING_TOKEN`` as its auth
token, if it has one); without it the agent serves them in-process on
``--host``/``--http-port``/``--grpc-port``.

Telemetry into a team server (standalone): the receiver wants a contributor token,
read from ``--telemetry-token-file`` (re-read when the file changes, so a rotated token
needs no restart) or ``AMLPKG_TELEMETRY_TOKEN`` (never from the command line, for the
same reason) and sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from amlpkg.errors import AmlpkgError, InvalidArgumentError

if TYPE_CHECKING:
    from amlpkg.edge_agent.link import Link


def build_parser() -> argparse.ArgumentParser:
    """The command line of the agent."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="amlpkg-edge-agent",
        description="IoT Edge module: verified model swaps, reported state, "
        "store-and-forward telemetry, beside a local KServe v2 runtime.",
    )
    add = parser.add_argument
    add(
        "--state-dir",
        type=Path,
        # AMLPKG_EDGE_CACHE: the volume path the IoT Edge manifest mounts for the agent.
        default=Path(env("AMLPKG_EDGE_STATE_DIR") or env("AMLPKG_EDGE_CACHE") or ".amlpkg-edge"),
        help="models, outbox and state (default $AMLPKG_EDGE_STATE_DIR, $AMLPKG_EDGE_CACHE"
        " or ./.amlpkg-edge)",
    )
    add(
        "--device-id",
        default=env("IOTEDGE_DEVICEID") or socket.gethostname(),
        help="device id in telemetry (default $IOTEDGE_DEVICEID or the host name)",
    )
    add("--module-id", default=env("IOTEDGE_MODULEID", "amlpkg-edge-agent"))
    add(
        "--deployment-id",
        default=env("AMLPKG_DEPLOYMENT_ID"),
        help="deployment this device belongs to (links telemetry into the lineage)",
    )
    add(
        "--standalone",
        metavar="SOURCE",
        help="poll this desired-state JSON file or URL instead of IoT Hub",
    )
    add("--telemetry-url", help="standalone: collector base URL (POST /v1/devices)")
    add(
        "--telemetry-token-file",
        type=Path,
        help="standalone: file holding the collector's token, e.g. a team server's contributor"
        " token (default $AMLPKG_TELEMETRY_TOKEN; sent as Authorization: Bearer)",
    )
    add("--poll-interval", type=float, default=10.0, help="standalone poll seconds")
    add("--ca-file", type=Path, help="CA certificate of the hub/gateway (outside IoT Edge)")
    add("--public-key", type=Path, help="Ed25519 public key (PEM): require signed models")
    add(
        "--trust",
        type=Path,
        help="signer's PEM public key or root chain: require OpenSSF Model Signing bundles",
    )
    add(
        "--scoring-url",
        default=env("AMLPKG_EDGE_SCORING_URL") or None,
        help="separate scoring module to push models to, e.g. http://scoring:8000"
        " (default $AMLPKG_EDGE_SCORING_URL; unset: serve in this process)",
    )
    add(
        "--no-candidate-check",
        dest="candidate_check",
        action="store_false",
        help="skip loading each new model under a hidden name first (halves the pushes;"
        " a model failing its smoke test is still rolled back)",
    )
    add("--host", default="0.0.0.0", help="address the local runtime binds")
    add("--http-port", type=int, default=8000, help="local runtime REST port")
    add("--grpc-port", type=int, default=8001, help="local runtime gRPC port")
    add("--telemetry-interval", type=float, default=60.0, help="seconds between messages")
    add(
        "--outbox-max-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="cap of the telemetry outbox: queued message bytes (oldest dropped, counted);"
        " the files on disk stay within a small multiple of it",
    )
    add(
        "--retry-max",
        type=float,
        default=300.0,
        help="longest wait in seconds between retries of a failed model download"
        " (exponential backoff with jitter from 2 s)",
    )
    add("--log-level", default="info")
    return parser


def telemetry_token(token_file: Path | None) -> str | None:
    """``$AMLPKG_TELEMETRY_TOKEN`` when no token file is given (the link reads the file)."""
    if token_file is None:
        return os.environ.get("AMLPKG_TELEMETRY_TOKEN", "").strip() or None
    return None


def _link(args: argparse.Namespace) -> Link:
    if args.standalone:
        from amlpkg.edge_agent.standalone import StandaloneLink

        return StandaloneLink(
            args.standalone,
            args.state_dir,
            telemetry_url=args.telemetry_url,
            telemetry_token=telemetry_token(args.telemetry_token_file),
            telemetry_token_file=args.telemetry_token_file,
            poll_interval_s=args.poll_interval,
        )
    from amlpkg.edge_agent.hub import HubLink

    connection_string = os.environ.get("AMLPKG_EDGE_CONNECTION_STRING")
    if connection_string:
        return HubLink.from_connection_string(connection_string, args.ca_file)
    if os.environ.get("IOTEDGE_WORKLOADURI"):
        return HubLink.from_edge_environment()
    raise InvalidArgumentError(
        "no control link: not inside IoT Edge and no connection string",
        hint="pass --standalone FILE|URL, or set AMLPKG_EDGE_CONNECTION_STRING (+ --ca-file)",
    )


async def _run(args: argparse.Namespace) -> None:
    from amlpkg.edge_agent.agent import AgentConfig, EdgeAgent

    key = args.public_key.read_bytes() if args.public_key else None
    config = AgentConfig(
        device_id=args.device_id,
        module_id=args.module_id,
        deployment_id=args.deployment_id,
        state_dir=args.state_dir,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        telemetry_interval_s=args.telemetry_interval,
        outbox_max_bytes=args.outbox_max_bytes,
        retry_max_s=args.retry_max,
        public_key_pem=key,
        trust=args.trust,
        scoring_url=args.scoring_url,
        scoring_token=os.environ.get("AMLPKG_EDGE_SCORING_TOKEN") or None,
        candidate_check=args.candidate_check,
    )
    agent = EdgeAgent(config, _link(args))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    await agent.run()


def main(argv: list[str] | None = None) -> None:
    """Parse options and run until SIGTERM/SIGINT."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_run(args))
    except AmlpkgError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
