"""Server settings: command line > ``AMLPKG_SERVER_*`` environment > defaults.

Build them with :func:`load_settings` from the options a command line gave (``None``
meaning "not given"), so the precedence is written once, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amlpkg.errors import InvalidArgumentError
from amlpkg.validation import describe_validation_error

MiB = 1024 * 1024


class ServerSettings(BaseSettings):
    """Everything the scoring server process needs to start."""

    model_config = SettingsConfigDict(
        env_prefix="AMLPKG_SERVER_",
        extra="forbid",
        protected_namespaces=(),
        use_attribute_docstrings=True,
    )

    model_repository: Path
    """Triton-layout model repository: ``<repo>/<model>/<version>/model.onnx``."""

    host: str = "0.0.0.0"
    """Address every listener binds (HTTP, gRPC, metrics)."""

    http_port: int = Field(8000, ge=0, le=65535)
    """KServe v2 REST port; 0 lets the OS pick a free one."""

    grpc_port: int = Field(8001, ge=0, le=65535)
    """KServe v2 gRPC port; 0 lets the OS pick a free one."""

    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Extra port serving only ``/metrics`` (no auth), for scrapers; ``/metrics`` stays on
    the HTTP port too."""

    max_request_size: int = Field(64 * MiB, gt=0)
    """Largest accepted REST request body in bytes; larger ones get 413 before being read."""

    grpc_max_message_size: int = Field(64 * MiB, gt=0)
    """Largest gRPC message in bytes (both directions); larger get RESOURCE_EXHAUSTED."""

    max_json_size: int = Field(16 * MiB, gt=0)
    """Largest JSON part of a REST request in bytes (413 above). JSON costs ~15x its size in
    memory once parsed, so it has a lower bound than binary tensor data."""

    max_elements: int = Field(64 * 1024 * 1024, gt=0)
    """Most tensor elements one request may declare (all inputs together; a zero-size dim
    does not hide the others). Checked before anything is allocated."""

    max_inputs: int = Field(256, gt=0)
    """Most input tensors in one request."""

    max_json_depth: int = Field(64, ge=4)
    """Deepest nesting of lists/objects accepted in request JSON and load configs."""

    json_thread_threshold: int = Field(1 * MiB, ge=0)
    """JSON bodies at least this large are decoded on a worker thread, so one big request
    does not stall health probes and other requests on the event loop."""

    max_header_size: int = Field(32 * 1024, ge=1024)
    """Largest HTTP request line + headers in bytes (431 above); also gRPC metadata."""

    http_header_timeout: float = Field(10.0, gt=0)
    """Seconds a client has to send a request's line and headers (slowloris guard); an
    idle connection that sends nothing is closed after this too."""

    http_read_timeout: float = Field(30.0, gt=0)
    """Seconds without a byte while a request body is incomplete before the connection
    is closed."""

    http_keepalive_timeout: float = Field(5.0, gt=0)
    """Seconds an idle keep-alive connection stays open between requests."""

    http_max_connections: int = Field(1024, gt=0)
    """Open HTTP connections (and running requests) above which requests get 503."""

    grpc_max_concurrent_streams: int = Field(1024, gt=0)
    """Concurrent gRPC calls per connection."""

    grpc_max_connection_idle: float = Field(600.0, gt=0)
    """Seconds a gRPC connection with no call in progress stays open."""

    grpc_max_connection_age: float | None = Field(None, gt=0)
    """Seconds after which a gRPC connection is asked to reconnect (spreads clients over
    replicas behind a load balancer); None = never."""

    grpc_keepalive_time: float = Field(60.0, gt=0)
    """Seconds between the server's keepalive pings on an idle gRPC connection."""

    grpc_keepalive_timeout: float = Field(20.0, gt=0)
    """Seconds to wait for a ping's answer before closing the gRPC connection."""

    strict_readiness: bool = True
    """``/v2/health/ready`` and ServerReady say ready only when every model the server was
    asked to serve has a ready version (Triton's ``--strict-readiness``); False: ready once
    the server has tried to load them."""

    auth_token: SecretStr | None = None
    """When set, every call but health needs ``Authorization: Bearer <token>`` or
    ``X-API-Key: <token>`` (gRPC: the same as metadata)."""

    tls_certfile: Path | None = None
    """PEM certificate (chain) enabling TLS on HTTP and gRPC; needs ``tls_keyfile``."""

    tls_keyfile: Path | None = None
    """PEM private key of ``tls_certfile``."""

    shutdown_timeout: float = Field(30.0, ge=0)
    """Seconds that SIGTERM/SIGINT waits for in-flight requests before closing anyway."""

    require_signature: bool = False
    """Load only model versions whose OpenSSF Model Signing bundle (``<version>/model.sig``
    over ``model.onnx`` and ``amlpkg-release.json``) verifies against ``trust``; an older
    signed version than one already served is refused too. Needs ``amlpkg-runtime[signing]``."""

    trust: Path | None = None
    """PEM public key of the signer, or a PEM certificate chain (root first or last), that
    ``require_signature`` verifies against. Offline: no Sigstore network access."""

    state_dir: Path | None = None
    """A folder that outlives the process (a volume) for what must survive a restart: with
    ``require_signature``, the highest signed version each model served, so a replayed
    older release is refused after a restart too. None: kept in memory only."""

    log_level: str = "info"
    """Python logging level name for the server's logs."""

    workers: int = Field(1, ge=1, le=64)
    """Server processes sharing the HTTP, gRPC and metrics ports (``SO_REUSEPORT``: the
    kernel spreads connections between them). One event loop decodes, batches and encodes
    at most a core's worth of requests; more workers use more cores for that, each with
    its own copy of every model (memory times ``workers``) and its own batcher. Models
    then cannot be loaded or unloaded through the API (each worker would diverge); shared
    memory registrations and ``/metrics`` cover all workers."""

    output_summaries: bool = False
    """Count each response's first output, one scalar per row in fixed bins
    (``amlpkg_output_summary_total{model,version,bin}`` on ``/metrics``, and exported by
    OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set): what the rollout gate's ``drift``
    compares. Off: no cost on the request path."""

    cpus: int | None = Field(None, ge=1, le=4096)
    """CPUs the server may use, split between workers and model instances for ONNX
    Runtime's intra-op threads. Default: the container's CPU quota (cgroup ``cpu.max``)
    if it has one, else the CPUs the process may run on."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile must be given together")
        if self.cpus is not None and self.cpus < self.workers:
            raise ValueError(f"cpus ({self.cpus}) must be at least workers ({self.workers})")
        if self.require_signature and self.trust is None:
            raise ValueError("require_signature needs trust (the signer's public key or root)")
        return self

    @property
    def token(self) -> str | None:
        """The auth token in clear, or None when auth is off."""
        return self.auth_token.get_secret_value() if self.auth_token else None


def load_settings(**given: Any) -> ServerSettings:
    """Settings from explicit options (None = not given) over the environment and defaults."""
    explicit = {k: v for k, v in given.items() if v is not None}
    try:
        return ServerSettings(**explicit)
    except ValidationError as exc:
        raise InvalidArgumentError(
            f"invalid server settings: {describe_validation_error(exc, 'settings')}",
            hint="check the command-line options and the AMLPKG_SERVER_* environment variables",
        ) from None
