"""Reconnect back-off: capped exponential with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from whatsgate.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """``base`` doubling per attempt up to ``cap`` seconds, each wait spread by ±``jitter``
    (a fraction) so that many sessions dropped together do not reconnect together."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap and 0 <= self.jitter < 1):
            raise InvalidInput("Back-off needs 0 < base <= cap and 0 <= jitter < 1.")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before reconnect attempt ``attempt`` (1-based)."""
        raw = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        spread = raw * self.jitter
        return max(0.0, min(self.cap * (1 + self.jitter), raw + rng.uniform(-spread, spread)))
