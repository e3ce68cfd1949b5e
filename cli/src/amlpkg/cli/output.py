"""Shared console output for the CLI: Rich consoles and JSON printing."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console()
error_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, for scripts (``--json``)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
