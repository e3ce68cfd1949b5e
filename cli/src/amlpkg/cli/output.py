"""Shared console output for the CLI: Rich consoles and JSON printing."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
error_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, for scripts (``--json``)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(table: Table) -> None:
    """Print ``table`` with every cell folding onto more lines rather than being cut.

    Logs and pipes are often 80 columns wide: a cell cut to ``quickst…`` loses the
    very text a reader greps for, so long cells (ids, names, times) fold instead.
    """
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    console.print(table)


def new_table(*columns: str, **kwargs: Any) -> Table:
    """A Rich table whose cells fold instead of being cut (see :func:`print_table`)."""
    table = Table(**kwargs)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
