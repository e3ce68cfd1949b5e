"""What a rollout is asked to do, parsed from the command line (pure functions).

- stages ``5%,25%,100%``: the cumulative share of the fleet on the new model after each.
- gate ``p95_ms<=1.2*control,error_rate<0.01``: checks on the cohort's telemetry, each
  against a constant or a factor of the control group's value.
- soak ``10m``: how long each stage runs before its gate is evaluated.
- fleet ``id=cam-*,deployment=plant1:*``: which device records take part (see
  :class:`FleetCondition`).
"""

from __future__ import annotations

import fnmatch
import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError

METRICS = ("p50_ms", "p95_ms", "p99_ms", "avg_ms", "error_rate", "drift", "swap_failures")
"""Gate metrics: latency percentiles of the cohort's telemetry, its error rate, ``drift``
(the Jensen-Shannon distance, 0..1, between the histograms of the cohort's and the
control group's output summaries on live traffic: 0 the same outputs, 1 none alike;
see :mod:`amlpkg.collector.outputs`), and the share of cohort devices that did not
swap (``swap_failures``, 0 allowed by default)."""
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
_CHECK = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?:(?P<factor>[0-9.]+)\s*\*\s*control|(?P<control>control)|(?P<value>[0-9.eE+-]+))\s*$"
)
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
FLEET_FIELDS = ("id", "module", "deployment", "model", "desired")
TAG_PREFIX = "tags."


@dataclass(frozen=True)
class Check:
    """One gate term: ``metric op value`` or ``metric op factor*control``."""

    metric: str
    op: str
    value: float | None = None
    factor: float | None = None
    """Set when the bound is relative: ``factor`` times the control group's value."""

    @property
    def text(self) -> str:
        """The term as the user writes it."""
        bound = f"{self.factor:g}*control" if self.factor is not None else f"{self.value:g}"
        return f"{self.metric}{self.op}{bound}"

    def bound(self, control: float | None) -> float | None:
        """The number to compare with (None: relative with no control value)."""
        if self.factor is None:
            return self.value
        return None if control is None else self.factor * control

    def passes(self, observed: float, control: float | None) -> bool | None:
        """Whether ``observed`` satisfies the check (None when it cannot be decided)."""
        bound = self.bound(control)
        return None if bound is None else _OPS[self.op](observed, bound)


def parse_gate(text: str) -> list[Check]:
    """``metric op bound`` terms separated by commas; ``swap_failures<=0`` is implied."""
    checks: list[Check] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        match = _CHECK.match(term)
        if match is None or match["metric"] not in METRICS:
            raise InvalidArgumentError(
                f"gate term {term!r} is not METRIC OP BOUND",
                hint=f"metrics: {', '.join(METRICS)}; e.g. p95_ms<=1.2*control,error_rate<0.01",
            )
        factor = 1.0 if match["control"] else match["factor"]
        try:
            checks.append(
                Check(
                    match["metric"],
                    match["op"],
                    value=None if match["value"] is None else float(match["value"]),
                    factor=None if factor is None else float(factor),
                )
            )
        except ValueError:
            raise InvalidArgumentError(
                f"gate term {term!r} has a bound that is no number"
            ) from None
    if not checks:
        raise InvalidArgumentError("the gate is empty", hint="e.g. --gate 'error_rate<0.01'")
    if not any(c.metric == "swap_failures" for c in checks):
        checks.append(Check("swap_failures", "<=", value=0.0))
    return checks


def gate_text(checks: list[Check]) -> str:
    """The canonical text of a gate (what is stored)."""
    return ",".join(c.text for c in checks)


def parse_stages(text: str) -> list[float]:
    """``5%,25%,100%`` -> ``[5.0, 25.0, 100.0]``: increasing, ending at 100%."""
    try:
        stages = [float(t.strip().removesuffix("%")) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InvalidArgumentError(
            f"stages {text!r} are not percentages", hint="e.g. --stages 5%,25%,100%"
        ) from None
    if not stages or stages[-1] != 100.0:
        raise InvalidArgumentError("the last stage must be 100%", hint="e.g. 5%,25%,100%")
    if any(s <= 0 for s in stages) or any(b <= a for a, b in itertools.pairwise(stages)):
        raise InvalidArgumentError(f"stages {text!r} must increase from above 0% to 100%")
    return stages


def parse_duration(text: str) -> float:
    """``10m``, ``30s``, ``1.5h``, ``500ms`` or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidArgumentError(f"{text!r} is not a duration", hint="e.g. 30s, 10m, 2h")
    return float(match[1]) * _UNITS[match[2]]


@dataclass(frozen=True)
class FleetCondition:
    """``FIELD=GLOB`` terms joined by ``,`` or `` AND `` (all must hold; ``!=`` negates).

    Fields of the device record: ``id``, ``module``, ``deployment`` (what it reports
    running under), ``model`` (reported ``name:version``), ``desired``, and
    ``tags.NAME`` (the device's twin tags, nested ones joined by dots:
    ``tags.site.line=3``; a device without the tag does not match ``=``). ``*`` is
    the whole fleet the workspace knows of.
    """

    terms: tuple[tuple[str, bool, str], ...]

    @classmethod
    def parse(cls, text: str) -> FleetCondition:
        """Parse the condition text (see the class docstring)."""
        if text.strip() in ("", "*"):
            return cls(())
        terms: list[tuple[str, bool, str]] = []
        for part in re.split(r",|\s+AND\s+", text):
            match = re.match(
                r"^\s*([a-z_]+|tags\.[A-Za-z0-9_.-]+)\s*(!=|=)\s*'?([^']*)'?\s*$", part
            )
            if match is None or not (match[1] in FLEET_FIELDS or match[1].startswith(TAG_PREFIX)):
                raise InvalidArgumentError(
                    f"fleet term {part.strip()!r} is not FIELD=GLOB",
                    hint=f"fields: {', '.join(FLEET_FIELDS)}, tags.NAME;"
                    " e.g. --fleet 'id=cam-*' or 'tags.region=eu-*'",
                )
            terms.append((match[1], match[2] == "!=", match[3]))
        return cls(tuple(terms))

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a device (``field -> value``) is in the fleet."""
        for name, negate, pattern in self.terms:
            value = record.get(name)
            hit = value is not None and fnmatch.fnmatchcase(str(value), pattern)
            if hit == negate:
                return False
        return True
