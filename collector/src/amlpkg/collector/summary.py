"""``amlpkg telemetry show``: per-deployment or per-device latency, throughput and errors."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.store.workspace import Workspace

GROUPS = {"deployment": "deployment_id", "device": "device_id"}


@dataclass(frozen=True)
class Summary:
    """Totals of one deployment or device over the selected window."""

    key: str
    messages: int
    requests: int
    errors: int
    error_rate: float
    throughput_rps: float | None
    latency_avg_ms: float | None
    latency_p95_ms: float | None
    first: float
    last: float
    models: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``30s``, ``15m``, ``2h``, ``1d`` (ago) or a Unix time -> a Unix time; None keeps all."""
    if text is None or text == "":
        return None
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1] in units:
            return now - float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise InvalidArgumentError(
            f"--since {text!r} is not a duration or a Unix time",
            hint="use e.g. 30s, 15m, 2h, 1d or 1764000000",
        ) from None


def summarize(
    ws: Workspace, *, by: str = "deployment", key: str | None = None, since: float | None = None
) -> list[Summary]:
    """Group telemetry rows by deployment or device (rows without one are skipped)."""
    if by not in GROUPS:
        raise InvalidArgumentError(f"cannot group telemetry by {by!r}; use deployment or device")
    column = GROUPS[by]
    where = [f"{column} IS NOT NULL"]
    params: list[Any] = []
    if key is not None:
        where.append(f"{column} = ?")
        params.append(key)
    if since is not None:
        where.append("received >= ?")
        params.append(since)
    rows = ws.conn.execute(
        f"SELECT {column} AS k, requests, errors, window_s, produced, received, latency_avg_ms,"
        " latency_p95_ms, model_name, model_version FROM telemetry"
        f" WHERE {' AND '.join(where)} ORDER BY k, received",
        params,
    ).fetchall()
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row["k"], []).append(row)
    return [_summary(k, members) for k, members in sorted(groups.items())]


def _summary(key: str, rows: list[Any]) -> Summary:
    requests = sum(int(r["requests"]) for r in rows)
    errors = sum(int(r["errors"]) for r in rows)
    windows = [float(r["window_s"]) for r in rows if r["window_s"]]
    times = [float(r["produced"] or r["received"]) for r in rows]
    span = sum(windows) if windows else max(times) - min(times)
    weighted = [(r["latency_avg_ms"], r["requests"]) for r in rows if r["latency_avg_ms"]]
    weight = sum(n for _, n in weighted)
    p95s = [float(r["latency_p95_ms"]) for r in rows if r["latency_p95_ms"] is not None]
    models = sorted(
        {f"{r['model_name']}:{r['model_version']}" for r in rows if r["model_name"] is not None}
    )
    return Summary(
        key=key,
        messages=len(rows),
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        throughput_rps=requests / span if span > 0 else None,
        latency_avg_ms=sum(v * n for v, n in weighted) / weight if weight else None,
        # the worst window's p95: an upper bound, never an underestimate
        latency_p95_ms=max(p95s) if p95s else None,
        first=min(times),
        last=max(times),
        models=models,
    )
