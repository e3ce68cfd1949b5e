"""Exponential backoff with jitter for work that fails while a device is offline.

A fleet of devices that lose their link together must not retry together when it
comes back: each delay is drawn from the upper half of an exponentially growing
window ("equal jitter"), capped, so retries spread out while still converging fast
after a short outage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for attempts 1, 2, 3, ...: ``base * 2**(n-1)`` capped at ``max_s``, jittered."""

    base_s: float = 2.0
    max_s: float = 300.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """Count one more attempt and return how long to wait before it."""
        self.attempts += 1
        window = min(self.max_s, self.base_s * 2 ** min(self.attempts - 1, 30))
        return window / 2 + self.rng.uniform(0.0, window / 2)
