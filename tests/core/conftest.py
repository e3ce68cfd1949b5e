"""Fixtures for the core tests: a fresh workspace per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from amlpkg.store.workspace import Workspace, open_workspace


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's workspace."""
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path / "default-home"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace folder that does not exist yet."""
    return tmp_path / "ws"


@pytest.fixture
def ws(home: Path) -> Iterator[Workspace]:
    """An open, migrated workspace."""
    with open_workspace(home) as workspace:
        yield workspace
