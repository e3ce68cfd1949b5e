"""Skip a test locally when a tool is missing, but fail it in CI (``CI=true``)."""

from __future__ import annotations

import os

import pytest


def need(available: bool, what: str) -> None:
    """Continue when ``available``; else skip (laptop) or fail (CI) naming ``what``."""
    if available:
        return
    message = f"needs {what}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must provide it)")
    pytest.skip(message)
