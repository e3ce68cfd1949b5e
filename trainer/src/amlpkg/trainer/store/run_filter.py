"""The small language of run searches: parsed into typed clauses, never into SQL text.

A search is clauses joined by spaces (an ``and`` between them may be written):

- ``metrics.KEY OP NUMBER``: the run's final value of metric ``KEY``, with ``OP`` one of
  ``= != < <= > >=`` (``==`` is ``=``);
- ``params.KEY OP VALUE`` and ``tags.KEY OP VALUE``: ``=`` or ``!=`` on the text value;
- any other word: a case-insensitive substring of the run's name or id.

``KEY`` and ``VALUE`` may be quoted with ``"`` (or a key with backticks) when they hold
spaces or operators. A comparison only matches runs that have that metric, param or tag.
Sort keys are ``start_time``, ``end_time``, ``duration``, ``name``, ``status``,
``metrics.KEY`` (final value) and ``params.KEY`` (text order).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from amlpkg.errors import InvalidArgumentError
from amlpkg.trainer.values import KEY_MAX

MAX_SEARCH_CHARS = 500
MAX_CLAUSES = 20
MAX_TAG_FILTERS = 10
Kind = Literal["metrics", "params", "tags"]
KINDS: tuple[Kind, ...] = ("metrics", "params", "tags")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
ATTRIBUTE_SORTS = ("start_time", "end_time", "duration", "name", "status")
_HINT = (
    "write words (name or id) and comparisons such as metrics.acc > 0.9, params.lr = 0.01 or"
    ' tags.team = "vision"; quote keys or values with spaces'
)
_KIND = re.compile(r"(metrics|params|tags)\.", re.IGNORECASE)
_OPERATOR = re.compile(r"==|!=|<=|>=|<|>|=")
_BARE_KEY = re.compile(r"[^\s=!<>\"'`]+")
_BARE_VALUE = re.compile(r"[^\s\"']+")


@dataclass(frozen=True)
class Comparison:
    """``KIND.KEY OP VALUE``; ``value`` is a float for metrics, text otherwise."""

    kind: Kind
    key: str
    op: str
    value: float | str


@dataclass(frozen=True)
class Word:
    """A substring of the run's name or id (matched case-insensitively)."""

    text: str


Clause = Comparison | Word


@dataclass(frozen=True)
class Sort:
    """What runs are ordered by: an attribute, or a metric's final value or a param."""

    field: str  # one of ATTRIBUTE_SORTS, or "metrics" / "params"
    key: str | None = None
    descending: bool = True


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, hint=_HINT)


def check_text(what: str, text: str) -> str:
    """``text`` unless it holds a NUL character (no key, value or name can; PostgreSQL
    refuses them outright)."""
    if "\x00" in text:
        raise InvalidArgumentError(f"the {what} holds a NUL character", hint="remove it")
    return text


def _quoted(text: str, pos: int, quote: str) -> tuple[str, int]:
    """The text inside the quote starting at ``pos`` (``\\"`` escapes a quote), and the end."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and quote == '"':
            out.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise _bad(f"unclosed {quote} in the search at character {pos + 1}")


def _token(text: str, pos: int, bare: re.Pattern[str], what: str) -> tuple[str, int]:
    if pos < len(text) and text[pos] in "\"'`":
        return _quoted(text, pos, text[pos])
    match = bare.match(text, pos)
    if not match:
        raise _bad(f"expected {what} at character {pos + 1} of the search")
    return match.group(), match.end()


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _comparison(kind: Kind, key: str, op: str, raw: str) -> Comparison:
    if not key or len(key) > KEY_MAX:
        raise _bad(f"a {kind} key must have 1 to {KEY_MAX} characters")
    op = "=" if op == "==" else op
    if kind != "metrics":
        if op not in ("=", "!="):
            raise _bad(f"{kind}.{key} is text: compare it with = or !=, not {op}")
        return Comparison(kind, key, op, raw)
    try:
        number = float(raw)
    except ValueError:
        raise _bad(f"metrics.{key} {op} {raw!r}: a metric compares with a number") from None
    if not math.isfinite(number):
        raise _bad(f"metrics.{key} {op} {raw}: compare with a finite number")
    return Comparison(kind, key, op, number)


def parse_search(text: str | None) -> list[Clause]:
    """The clauses of a search (see the module doc); a clear error on anything else."""
    if not text:
        return []
    if len(text) > MAX_SEARCH_CHARS:
        raise _bad(f"the search has {len(text)} characters; at most {MAX_SEARCH_CHARS}")
    check_text("search", text)
    clauses: list[Clause] = []
    pos = _skip_spaces(text, 0)
    while pos < len(text):
        kind = _KIND.match(text, pos)
        if kind:
            name: Kind = kind.group(1).lower()  # type: ignore[assignment]
            key, pos = _token(text, kind.end(), _BARE_KEY, f"a key after {name}.")
            pos = _skip_spaces(text, pos)
            op = _OPERATOR.match(text, pos)
            if not op:
                raise _bad(f"expected one of {' '.join(OPERATORS)} after {name}.{key}")
            pos = _skip_spaces(text, op.end())
            value, pos = _token(text, pos, _BARE_VALUE, f"a value after {name}.{key} {op.group()}")
            clauses.append(_comparison(name, key, op.group(), value))
        else:
            word, pos = _token(text, pos, _BARE_VALUE, "a word")
            if word.lower() != "and" and word:
                clauses.append(Word(word))
        if len(clauses) > MAX_CLAUSES:
            raise _bad(f"the search has more than {MAX_CLAUSES} clauses")
        pos = _skip_spaces(text, pos)
    return clauses


def parse_tag(text: str) -> Comparison:
    """A tag filter ``KEY=VALUE`` (exact value); ``KEY`` alone is not accepted."""
    key, sep, value = check_text("tag filter", text).partition("=")
    if not sep or not key or len(key) > KEY_MAX:
        raise InvalidArgumentError(
            f"tag filter {text[:60]!r} is not KEY=VALUE", hint="e.g. tag=team=vision"
        )
    return Comparison("tags", key, "=", value)


def parse_sort(text: str | None, order: str | None = None) -> Sort:
    """``start_time`` (default), ``end_time``, ``duration``, ``name``, ``status``,
    ``metrics.KEY`` or ``params.KEY``; ``order`` is ``asc`` or ``desc`` (default)."""
    if order not in (None, "asc", "desc"):
        raise InvalidArgumentError(f"order {order!r} is not asc or desc", hint="order=asc|desc")
    descending = order != "asc"
    field = check_text("sort", (text or "start_time").strip())
    if field in ATTRIBUTE_SORTS:
        return Sort(field, None, descending)
    kind, dot, key = field.partition(".")
    if dot and kind in ("metrics", "params") and 0 < len(key) <= KEY_MAX:
        return Sort(kind, key, descending)
    raise InvalidArgumentError(
        f"cannot sort runs by {field[:60]!r}",
        hint=f"sort by {', '.join(ATTRIBUTE_SORTS)}, metrics.KEY or params.KEY",
    )
