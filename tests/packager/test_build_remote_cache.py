"""Builds against team servers keep their caches (wheels, contexts, signatures) per server:
a signature fetched from one server never sits beside another's same-named model."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.packager.build.remote import build_workspace
from amlpkg.packager.deploy.remote import workspace_home
from amlpkg.trainer.remote.config import Server


def test_each_server_has_its_own_build_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = build_workspace(Server("https://ml-a.example", "t1"))
    b = build_workspace(Server("https://ml-b.example", "t1"))
    prefixed = build_workspace(Server("https://ml-a.example/team2", "t1"))
    assert len({a, b, prefixed}) == 3
    assert build_workspace(Server("https://ml-a.example", "another-token")) == a  # not the token
    assert a.parent == b.parent == tmp_path / "amlpkg" / "build"
    assert a.name.startswith("ml-a.example-") and b.name.startswith("ml-b.example-")
    # The deployments' cache workspace of the same server is a different folder.
    deploy = workspace_home(Server("https://ml-a.example", "t1"))
    assert deploy == tmp_path / "amlpkg" / "deploy" / a.name
