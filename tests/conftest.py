"""Every test runs against the workspace it names, never a team server a developer
logged in to: the user's amlpkg config (``amlpkg login``) and a tracking URI in the
environment are hidden from the tests. ``tests/remote`` sets its own server.

``home`` and ``ws``: a fresh workspace per test, for any folder that does not name its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from amlpkg.store.workspace import Workspace, open_workspace


@pytest.fixture(autouse=True)
def _no_user_tracking_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in ("AMLPKG_TRACKING_URI", "AMLPKG_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace folder that does not exist yet."""
    return tmp_path / "ws"


@pytest.fixture
def ws(home: Path) -> Iterator[Workspace]:
    """An open, migrated workspace."""
    with open_workspace(home) as workspace:
        yield workspace
