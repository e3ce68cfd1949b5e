"""The checks every logged value passes, whether the run is in a workspace or on a server."""

from __future__ import annotations

import math

from amlpkg.errors import InvalidArgumentError

KEY_MAX = 250


def check_key(kind: str, key: object) -> str:
    """A param, metric or tag key: a non-empty string of at most :data:`KEY_MAX` chars."""
    if not isinstance(key, str) or not key or len(key) > KEY_MAX:
        raise InvalidArgumentError(
            f"{kind} key must be a non-empty string of at most {KEY_MAX} chars"
        )
    return key


def metric_value(key: str, raw: object) -> float:
    """``raw`` as a finite float; NaN/inf cannot be ranked by ``runs best`` nor sent as JSON."""
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"metric {key!r} must be a number, got {raw!r}") from exc
    if not math.isfinite(value):
        raise InvalidArgumentError(
            f"metric {key!r} is {value}", hint="log a finite number (or set a tag instead)"
        )
    return value
