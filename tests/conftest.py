"""Every test runs against the workspace it names, never a team server a developer
logged in to: the user's amlpkg config (``amlpkg login``) and a tracking URI in the
environment are hidden from the tests. ``tests/remote`` sets its own server."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_user_tracking_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in ("AMLPKG_TRACKING_URI", "AMLPKG_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
