"""Output histograms as devices send them: validated, bounded, and compared.

An edge agent summarizes each response by one scalar (see
:mod:`amlpkg.runtime.summaries`) and counts the summaries per fixed bin; each
telemetry message carries the counts of its window as ``{"outputs": {"BIN": COUNT}}``,
and a runtime's OTLP metrics carry them as the delta sum ``amlpkg_output_summary``
(:mod:`amlpkg.collector.otlp`).
A device is untrusted input: bins are integers in ``[0, MAX_BINS)``, counts are
non-negative integers up to ``MAX_COUNT``, anything else refuses the message (a
4xx at the ingest endpoint), so a stored histogram never has more than
``MAX_BINS`` entries.

:func:`js_distance` is the Jensen-Shannon distance (base 2) of two histograms:
0 for the same distribution, 1 for ones with no bin in common; symmetric, bounded
and defined with empty bins (unlike PSI or KL divergence, which need smoothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from amlpkg.errors import InvalidArgumentError

MAX_BINS = 256
"""Bins a histogram may use (``0..MAX_BINS-1``); the agent's scale uses fewer."""
MAX_COUNT = 1_000_000_000
"""Largest count one window may report for one bin."""

Histogram = dict[str, int]
"""Bin (decimal string, as JSON keys are) -> count."""


def validate(value: Any) -> Histogram | None:
    """A device's ``outputs`` field as a histogram (None when absent); refuse anything else."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_BINS:
        raise InvalidArgumentError(
            f"telemetry 'outputs' must be an object of at most {MAX_BINS} bins",
            hint='send the histogram amlpkg-edge-agent builds: {"BIN": COUNT}',
        )
    out: Histogram = {}
    for key, count in value.items():
        text = str(key)
        if not text.isdigit() or int(text) >= MAX_BINS:
            raise InvalidArgumentError(
                f"telemetry output bin {text[:20]!r} is not an integer in [0, {MAX_BINS})"
            )
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
            raise InvalidArgumentError(
                f"telemetry output bin {text} has count {str(count)[:20]!r}",
                hint=f"counts are integers in [0, {MAX_COUNT}]",
            )
        if count:
            out[str(int(text))] = out.get(str(int(text)), 0) + count
    return out


def merge(histograms: Iterable[Mapping[str, int] | None]) -> Histogram:
    """The bin-wise sum of ``histograms`` (None entries skipped)."""
    total: Histogram = {}
    for histogram in histograms:
        for key, count in (histogram or {}).items():
            total[str(key)] = total.get(str(key), 0) + int(count)
    return total


def js_distance(p: Mapping[str, int], q: Mapping[str, int]) -> float | None:
    """Jensen-Shannon distance of two histograms in [0, 1]; None when either is empty."""
    p_total, q_total = sum(p.values()), sum(q.values())
    if p_total <= 0 or q_total <= 0:
        return None
    divergence = 0.0
    for key in set(p) | set(q):
        pi, qi = p.get(key, 0) / p_total, q.get(key, 0) / q_total
        mi = (pi + qi) / 2
        if pi > 0:
            divergence += 0.5 * pi * math.log2(pi / mi)
        if qi > 0:
            divergence += 0.5 * qi * math.log2(qi / mi)
    return math.sqrt(min(1.0, max(0.0, divergence)))
