"""Request size limits, checked before anything is allocated.

A request declares shapes; a hostile one declares shapes far larger than the bytes it
sends (a 120-byte BYTES tensor "of" a billion elements). Every decoder calls
:func:`check_shape` first and then makes the declared size agree with the bytes that
really arrived, so memory is bounded by the body, never by the declaration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from amlpkg.runtime.errors import InvalidInputError, PayloadTooLargeError

MiB = 1024 * 1024
# numpy's own limit is 64 dims; nothing served here needs more than a handful.
MAX_RANK = 32
# The smallest encoding of one BYTES element: its 4-byte length prefix.
MIN_BYTES_ELEMENT = 4


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The per-request bounds (see :class:`amlpkg.runtime.settings.ServerSettings`)."""

    max_elements: int = 64 * 1024 * 1024
    max_inputs: int = 256
    max_json_size: int = 16 * MiB
    max_json_depth: int = 64
    json_thread_threshold: int = 1 * MiB


DEFAULT_LIMITS = RequestLimits()


def check_shape(shape: tuple[int, ...], name: str, limits: RequestLimits) -> int:
    """The element count of ``shape``, after refusing shapes no request may declare.

    The product of the non-zero dims is bounded too: a zero-size tensor of shape
    ``[0, 10**15]`` holds nothing, but numpy and ONNX Runtime would still choke on it.
    """
    if len(shape) > MAX_RANK:
        raise InvalidInputError(
            f"input {name!r}: shape has {len(shape)} dims; at most {MAX_RANK} are accepted"
        )
    if shape and min(shape) < 0:
        raise InvalidInputError(f"input {name!r}: shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    # Without a zero dim the count is the product of the non-zero dims (the common case).
    nonzero = count if count else math.prod(d for d in shape if d)
    if nonzero > limits.max_elements:
        raise PayloadTooLargeError(
            f"input {name!r}: shape {_fmt(shape)} declares more than the limit of "
            f"{limits.max_elements} elements",
            hint="send smaller batches, or raise AMLPKG_SERVER_MAX_ELEMENTS",
        )
    return count


def check_total(count: int, limits: RequestLimits) -> None:
    """Refuse a request whose inputs together declare too many elements."""
    if count > limits.max_elements:
        raise PayloadTooLargeError(
            f"the request's inputs declare {count} elements, over the limit of "
            f"{limits.max_elements}",
            hint="send smaller batches, or raise AMLPKG_SERVER_MAX_ELEMENTS",
        )


def check_input_count(count: int, limits: RequestLimits) -> None:
    """Refuse a request with more input tensors than the limit."""
    if count > limits.max_inputs:
        raise PayloadTooLargeError(
            f"the request has {count} inputs, over the limit of {limits.max_inputs}",
            hint="raise AMLPKG_SERVER_MAX_INPUTS if a model really has that many inputs",
        )


def check_depth(doc: Any, limit: int, what: str) -> None:
    """Refuse JSON/YAML data nested deeper than ``limit`` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            raise InvalidInputError(
                f"{what} is nested deeper than {limit} levels",
                hint="flatten the data (tensor data may be flat, as the shape says)",
            )
        stack.extend((child, depth + 1) for child in children)


def _fmt(shape: tuple[int, ...]) -> str:
    text = ", ".join(str(d) for d in shape)
    return "[" + (text if len(text) < 200 else text[:200] + "...") + "]"
