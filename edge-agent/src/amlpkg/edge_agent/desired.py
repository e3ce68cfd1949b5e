"""The module twin's desired properties: which model the device must serve, and how.

Shape of the twin (``properties.desired``; other keys such as ``$version`` are ignored)::

    {"model": {"name": "iris", "version": "3", "sha256": "<64 hex>",
               "url": "https://.../model.onnx" | "file:///...",   # or "oci": "oci://host/repo@sha256:..."
               "signature": "<base64 Ed25519 over the raw sha256 digest>",  # optional
               "signature_url": ".../model.sig", "release_url": ".../amlpkg-release.json",
               "config": {...config.yaml keys of the runtime...}},          # optional
     "telemetry_interval_s": 60, "min_version": 3}
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from amlpkg.errors import InvalidArgumentError
from amlpkg.validation import describe_validation_error

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class DesiredModel(BaseModel):
    """One model the device must serve, with what is needed to fetch and check it."""

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    name: str
    """Model name served by the local runtime (the registry name)."""
    version: str
    """Registry version: a positive integer, used as the repository version folder."""
    sha256: str
    """Hex SHA-256 of the ONNX file: the download is rejected unless it matches."""
    url: str | None = None
    """``http(s)://`` or ``file://`` location of the ONNX file."""
    oci: str | None = None
    """OCI artifact ``oci://host/repo@sha256:...`` (or ``:tag``) with the ONNX file as a layer."""
    signature: str | None = None
    """Base64 Ed25519 signature of the raw 32-byte digest (checked when a key is set)."""
    signature_url: str | None = None
    """``http(s)://`` or ``file://`` URL of the OpenSSF Model Signing bundle (``model.sig``)."""
    release_url: str | None = None
    """URL of the signed release file (``amlpkg-release.json``) the bundle covers."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Runtime ``config.yaml`` keys for this model (batching, providers, threads)."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _check(self) -> DesiredModel:
        if not _NAME.match(self.name):
            raise ValueError(f"model name {self.name!r} must be letters, digits, _ . -")
        if not self.version.isdigit() or int(self.version) <= 0:
            raise ValueError(f"version {self.version!r} must be a positive integer")
        if not _SHA256.match(self.sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        if (self.url is None) == (self.oci is None):
            raise ValueError("give exactly one of url or oci")
        for key in ("url", "signature_url", "release_url"):
            value = getattr(self, key)
            if value is not None and not value.startswith(("http://", "https://", "file://")):
                raise ValueError(f"{key} {value!r} must start with http://, https:// or file://")
        return self

    @property
    def ref(self) -> str:
        """``NAME:VERSION``."""
        return f"{self.name}:{self.version}"


class DesiredState(BaseModel):
    """The desired properties the agent acts on."""

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    model: DesiredModel | None = None
    """The model to serve (None: keep serving what is there)."""
    telemetry_interval_s: float | None = Field(None, gt=0)
    """Seconds between telemetry messages (None keeps the agent's own setting)."""
    min_version: int | None = Field(None, gt=0)
    """Lowest model version the device may serve: older (signed) versions are refused."""


def parse_desired(data: Any, source: str = "desired properties") -> DesiredState:
    """Validate twin desired properties (or a standalone desired-state document)."""
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"{source}: expected a JSON object, got {type(data).__name__}")
    try:
        return DesiredState.model_validate(data)
    except ValidationError as exc:
        raise InvalidArgumentError(
            f"{source} are invalid: {describe_validation_error(exc, 'root')}",
            hint="set desired.model to {name, version, sha256, url|oci[, signature, config]}",
        ) from None
