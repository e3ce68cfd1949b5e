"""Read a Rich table back from CLI output, where long cells fold onto more lines."""

from __future__ import annotations


def columns(output: str, border: str = "│") -> list[str]:
    """Each column's text, its folded pieces joined (rows follow one another).

    ``border="│"`` reads the body, ``"┃"`` the header.
    """
    texts: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        if not line.startswith(border):
            continue
        cells = [cell.strip() for cell in line.strip(border).split(border)]
        if not texts:
            texts = [""] * len(cells)
        for index, cell in enumerate(cells):
            texts[index] += cell
    return texts


def assert_not_cut(output: str, *values: str) -> None:
    """No cell is cut with an ellipsis, and every value appears whole in some column."""
    assert "…" not in output, output
    joined = columns(output) + columns(output, "┃")
    for value in values:
        assert any(value.replace(" ", "") in text for text in joined), (value, joined)
