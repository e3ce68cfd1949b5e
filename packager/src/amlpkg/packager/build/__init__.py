"""``amlpkg build``: scoring images, package folders/tarballs and Triton repositories.

Import the pieces from their modules (``amlpkg.packager.build.api``, ...); this
package's ``__init__`` stays light and re-exports lazily.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "BuildOptions": "amlpkg.packager.build.options",
    "Hooks": "amlpkg.packager.build.options",
    "Package": "amlpkg.packager.build.records",
    "build_image": "amlpkg.packager.build.api",
    "build_package_dir": "amlpkg.packager.build.package_dir",
    "make_package": "amlpkg.packager.build.package_dir",
    "export_triton": "amlpkg.packager.build.triton",
    "ensure_local_base": "amlpkg.packager.build.base_image",
    "quickstart_step": "amlpkg.packager.build.quickstart",
}

__all__ = [
    "BuildOptions",
    "Hooks",
    "Package",
    "build_image",
    "build_package_dir",
    "ensure_local_base",
    "export_triton",
    "make_package",
    "quickstart_step",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
