"""Where a build's model comes from and where its package row goes: a workspace or a team server.

A build always runs on this machine, with this machine's caches (wheels, base
images, build contexts in the workspace ``ws``); only these two steps differ.
:class:`WorkspaceSite` is the embedded workspace;
:class:`amlpkg.packager.build.remote.ServerSite` a team server.
"""

from __future__ import annotations

from typing import Protocol

from amlpkg.packager.build import records
from amlpkg.packager.build.records import Package
from amlpkg.packager.build.source import ModelSource, resolve
from amlpkg.store.workspace import Workspace

Made = tuple[tuple[str, str], str]  # (lineage node, relation) from the package to what it made


class BuildSite(Protocol):
    """What a build reads (the model to ship) and writes (the package row and its edges)."""

    def resolve(self, ref: str, target: str, *, use_variant: bool) -> ModelSource:
        """The version ``ref`` names and its chosen variant for ``target`` (a local file)."""
        ...

    def record(self, package: Package, made: Made | None) -> Package:
        """Record the package and its lineage edges in one transaction."""
        ...


class WorkspaceSite:
    """The workspace the build runs in."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def resolve(self, ref: str, target: str, *, use_variant: bool) -> ModelSource:
        return resolve(self.ws, ref, target, use_variant=use_variant)

    def record(self, package: Package, made: Made | None) -> Package:
        return records.record_package(self.ws, package, made)
