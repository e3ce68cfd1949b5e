"""Parameters of the repository load call: Triton's file overrides and config keys."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from amlpkg.runtime.errors import InvalidInputError

FILE_PREFIX = "file:"
# model.onnx, plus the signature bundle and signed release file a signed version carries.
_OVERRIDE_FILE = re.compile(r"[1-9][0-9]{0,8}/(model\.onnx|model\.sig|amlpkg-release\.json)")


def override_files(parameters: Mapping[str, Any]) -> dict[str, bytes]:
    """The ``file:<version>/model.onnx`` load parameters as ``{"<version>/model.onnx": bytes}``.

    Only ``model.onnx`` and the signature files beside it (``model.sig``,
    ``amlpkg-release.json``) in a version folder are accepted, so no name can reach
    outside the override folder. Text values are base64 (Triton's HTTP form).
    """
    files: dict[str, bytes] = {}
    for key, value in parameters.items():
        if not key.startswith(FILE_PREFIX):
            continue
        relative = key[len(FILE_PREFIX) :]
        if not _OVERRIDE_FILE.fullmatch(relative):
            raise InvalidInputError(
                f"load parameter {key!r} is refused: override files must be named"
                " 'file:<version>/model.onnx' (or model.sig, amlpkg-release.json)",
                hint="use a positive integer version folder, e.g. 'file:1/model.onnx'",
            )
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, str):
            try:
                data = base64.b64decode(value, validate=True)
            except binascii.Error as exc:
                raise InvalidInputError(
                    f"load parameter {key!r} is not valid base64: {exc}",
                    hint="send the file bytes base64-encoded (HTTP) or as bytes_param (gRPC)",
                ) from None
        else:
            raise InvalidInputError(f"load parameter {key!r} must hold the file bytes")
        files[relative] = data
    return files


# Keys of a Triton model config that name what this runtime already is.
_TRITON_IDENTITY = {"platform": "onnxruntime_onnx", "backend": "onnxruntime"}


def without_triton_keys(config: Any, name: str) -> Any:
    """Accept Triton's ``name``/``platform``/``backend`` keys when they match this model."""
    if not isinstance(config, dict):
        return config
    config = dict(config)
    given = config.pop("name", name)
    if given != name:
        raise InvalidInputError(
            f"load parameter 'config' names model {given!r}, not {name!r}",
            hint="drop 'name' or make it the loaded model's name",
        )
    for key, expected in _TRITON_IDENTITY.items():
        value = config.pop(key, expected)
        if value != expected:
            raise InvalidInputError(
                f"load parameter 'config': {key} {value!r} is not served here",
                hint=f"this runtime serves ONNX models ({key} {expected!r})",
            )
    return config


_SEQUENCE_KEYS = ("sequence_id", "sequence_start", "sequence_end")


def check_sequence_parameters(parameters: Mapping[str, Any]) -> None:
    """Refuse Triton's sequence-batcher parameters: this runtime keeps no sequence state.

    Ignoring them would give a stateful client wrong answers without an error. A
    ``sequence_id`` of 0/"" and false start/end flags (what clients send when not in a
    sequence) are accepted.
    """
    if not parameters:  # the common case, on every request
        return
    used = [k for k in _SEQUENCE_KEYS if parameters.get(k) not in (None, 0, "", False)]
    if used:
        raise InvalidInputError(
            f"sequence parameters {used} are not supported: the amlpkg runtime has no "
            "sequence batcher and keeps no state between requests",
            hint="send each request on its own (no sequence_id), or serve stateful models "
            "with a server that has a sequence batcher",
        )
