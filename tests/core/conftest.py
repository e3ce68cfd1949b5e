"""Fixtures for the core tests: no test sees the developer's workspace.

The fresh workspace per test (``home``, ``ws``) is tests/conftest.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's workspace."""
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path / "default-home"))
