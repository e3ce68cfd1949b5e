"""The committed UI bundle matches its sources, ships as package data, and stays small."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from amlpkg.server import ui

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ROOT / "server" / "ui"
# The whole bundle, every asset (cytoscape is most of it); a jump past this is a decision.
MAX_BUNDLE_BYTES = 700_000


def _source_hash(inputs: list[str]) -> str:
    """The hash server/ui/scripts/manifest.mjs writes: sorted paths, then "path\\0bytes\\0"."""
    files: list[str] = []
    for name in inputs:
        path = SOURCES / name
        found = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        files += [p.relative_to(SOURCES).as_posix() for p in found]
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (SOURCES / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _manifest() -> dict[str, object]:
    manifest: dict[str, object] = json.loads((ui.STATIC / "manifest.json").read_text())
    return manifest


def test_the_committed_bundle_was_built_from_the_committed_sources() -> None:
    inputs = ["index.html", "package.json", "package-lock.json", "vite.config.js", "src"]
    assert _manifest()["source_sha256"] == _source_hash(inputs), (
        "server/ui changed since the bundle was built: run `make ui` and commit static/"
    )


def test_the_index_names_only_assets_that_ship_and_no_remote_ones() -> None:
    index = (ui.STATIC / "index.html").read_text()
    referenced = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', index)
    assert referenced, index
    for url in referenced:
        assert url.startswith("/ui/"), f"{url}: every asset ships in the package (no CDN)"
        assert (ui.STATIC / url.removeprefix("/ui/")).is_file(), url
    sizes = _manifest()["assets"]
    assert isinstance(sizes, dict)
    assert sum(sizes.values()) < MAX_BUNDLE_BYTES, sizes


def test_the_bundle_is_declared_as_package_data() -> None:
    config = tomllib.loads((ROOT / "server" / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["amlpkg.server"]
    shipped = {
        p.relative_to(ui.STATIC.parent).as_posix() for p in ui.STATIC.rglob("*") if p.is_file()
    }
    for name in shipped:
        assert any(Path(name).match(p) for p in patterns), f"{name} is not package data"
