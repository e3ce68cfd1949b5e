"""amlpkg: from a tracked training run to fast ONNX scoring endpoints.

The training-script API lives here so that a script needs only ``import amlpkg``::

    import amlpkg
    amlpkg.log_param("alpha", 0.1)
    amlpkg.log_metric("loss", 0.25, step=3)
    amlpkg.log_artifact("confusion.png")

Importing this package is cheap: every name below is loaded on first use, and no
ML framework, ONNX Runtime, Docker or Kubernetes client is imported here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

# One import namespace, many distributions: amlpkg-core ships this file and each
# role (amlpkg-runtime, amlpkg-trainer, ...) ships its own subpackage from its own
# folder. Installed wheels share one folder; editable installs have one per role.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY: dict[str, str] = {
    "start_run": "amlpkg.trainer.tracking",
    "end_run": "amlpkg.trainer.tracking",
    "active_run": "amlpkg.trainer.tracking",
    "log_param": "amlpkg.trainer.tracking",
    "log_params": "amlpkg.trainer.tracking",
    "log_metric": "amlpkg.trainer.tracking",
    "log_metrics": "amlpkg.trainer.tracking",
    "log_artifact": "amlpkg.trainer.tracking",
    "set_tag": "amlpkg.trainer.tracking",
    "AmlpkgError": "amlpkg.errors",
}

__all__ = [
    "AmlpkgError",
    "__version__",
    "active_run",
    "end_run",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "start_run",
]

if TYPE_CHECKING:
    from amlpkg.errors import AmlpkgError
    from amlpkg.trainer.tracking import (
        active_run,
        end_run,
        log_artifact,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        set_tag,
        start_run,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amlpkg' has no attribute {name!r}")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("amlpkg."):
            raise
        raise ImportError(
            f"amlpkg.{name} needs the {module.split('.')[1]} role:"
            f" pip install amlpkg-{module.split('.')[1]}"
        ) from exc
    value = getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
