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

    auth_token: SecretStr | None = None
    """When set, every call but health needs ``Authorization: Bearer <token>`` or
    ``X-API-Key: <token>`` (gRPC: the same as metadata)."""

    tls_certfile: Path | None = None
    """PEM certificate (chain) enabling TLS on HTTP and gRPC; needs ``tls_keyfile``."""

    tls_keyfile: Path | None = None
    """PEM private key of ``tls_certfile``."""

    shutdown_timeout: float = Field(30.0, ge=0)
    """Seconds that SIGTERM/SIGINT waits for in-flight requests before closing anyway."""

    log_level: str = "info"
    """Python logging level name for the server's logs."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile must be given together")
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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidArgumentError(
            f"invalid server settings: {problems}",
            hint="check the command-line options and the AMLPKG_SERVER_* environment variables",
        ) from None
