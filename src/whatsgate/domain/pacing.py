"""Send pacing (anti-ban): how fast one session may send, and how a human would type.

Per session, up to ``per_window`` sends in a rolling ``window`` go out with a small random gap.
Beyond that the session is held back: no more than ``per_window`` sends ever fall in one
rolling window, and each further send waits longer after the previous one (``held_step``,
twice that, three times…, up to ``held_cap``) until the session has been quiet for a whole
window. Nothing is dropped; messages only wait.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from whatsgate.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingPolicy:
    #: Sends allowed in any rolling window before the session is held back.
    per_window: int = 30
    window: float = 60.0
    #: The small random gap between sends within the budget (seconds).
    gap_min: float = 0.5
    gap_max: float = 1.5
    #: Beyond the budget, the n-th held-back send waits ``n * held_step`` (at most
    #: ``held_cap``) after the previous send, spread by ±``jitter`` of a step (below half a
    #: step, so each wait is still longer than the one before).
    held_step: float = 2.0
    held_cap: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.per_window < 1 or self.window <= 0:
            raise InvalidInput("Pacing needs at least one send per window and a positive window.")
        if not 0 <= self.gap_min <= self.gap_max:
            raise InvalidInput("Pacing needs 0 <= gap_min <= gap_max.")
        if not (0 < self.held_step <= self.held_cap and 0 <= self.jitter < 0.5):
            raise InvalidInput("Pacing needs 0 < held_step <= held_cap and 0 <= jitter < 0.5.")

    def held_gap(self, level: int, rng: random.Random) -> float:
        """The wait after the previous send before the ``level``-th held-back send (1-based)."""
        raw = min(self.held_cap, self.held_step * max(1, level))
        spread = self.held_step * self.jitter
        return raw + rng.uniform(-spread, spread)


@dataclass(frozen=True, slots=True, kw_only=True)
class HumanTyping:
    """Optional human-like sending: mark the chat read, type for a while, then send."""

    enabled: bool = False
    #: Typing time per character of text (a caption counts; media alone types ``minimum``).
    per_char: float = 0.05
    minimum: float = 1.0
    maximum: float = 8.0

    def __post_init__(self) -> None:
        if not (self.per_char >= 0 and 0 <= self.minimum <= self.maximum):
            raise InvalidInput("Typing needs 0 <= per_char and 0 <= minimum <= maximum.")

    def duration(self, text: str | None, rng: random.Random) -> float:
        """How long to show "typing…" before a text of this length, with a little jitter."""
        raw = len(text or "") * self.per_char * rng.uniform(0.85, 1.15)
        return max(self.minimum, min(self.maximum, raw))


@dataclass(frozen=True, slots=True)
class Slot:
    """When the next send of a session may go, and whether pacing is holding it back."""

    at: datetime
    throttled: bool


@dataclass(slots=True)
class _Pace:
    recent: deque[datetime]
    earliest: datetime | None = None
    level: int = 0


class SendPacer:
    """Remembers each session's recent sends and says when the next one may go.

    ``slot`` only asks (it is stable until the next ``record``); ``record`` registers a send
    that reached WhatsApp and draws the random gap that follows it. The state is this
    process's: the node that owns a session owns its pacing.
    """

    def __init__(self, policy: PacingPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self._paces: dict[str, _Pace] = {}

    def _pace(self, session_id: str, now: datetime) -> _Pace:
        pace = self._paces.setdefault(session_id, _Pace(deque()))
        horizon = now - timedelta(seconds=self.policy.window)
        while pace.recent and pace.recent[0] <= horizon:
            pace.recent.popleft()
        if not pace.recent:
            pace.level = 0  # quiet for a whole window: back to the normal pace
        return pace

    def slot(self, session_id: str, now: datetime) -> Slot:
        pace = self._pace(session_id, now)
        at = max(now, pace.earliest or now)
        policy = self.policy
        if pace.level == 0 and len(pace.recent) < policy.per_window:
            return Slot(at, throttled=False)
        if len(pace.recent) >= policy.per_window:
            # Never more than per_window in one rolling window.
            frees_at = pace.recent[-policy.per_window] + timedelta(seconds=policy.window)
            at = max(at, frees_at)
        return Slot(at, throttled=True)

    def record(self, session_id: str, at: datetime) -> None:
        """A send went out at ``at``."""
        pace = self._pace(session_id, at)
        held = pace.level > 0 or len(pace.recent) >= self.policy.per_window
        pace.recent.append(at)
        if held or len(pace.recent) >= self.policy.per_window:
            pace.level += 1
            gap = self.policy.held_gap(pace.level, self.rng)
        else:
            gap = self.rng.uniform(self.policy.gap_min, self.policy.gap_max)
        pace.earliest = at + timedelta(seconds=gap)

    def ahead_needed(self, session_id: str, now: datetime) -> int:
        """How many of the session's queued messages ``would_hold`` needs counted to answer
        exactly: it only asks whether they reach the budget left in the window, so a count
        capped at that is as good as the full one (0: held back whatever is queued)."""
        pace = self._pace(session_id, now)
        if pace.level > 0:
            return 0
        return max(0, self.policy.per_window - len(pace.recent))

    def would_hold(self, session_id: str, now: datetime, *, ahead: int) -> bool:
        """Whether a message queued now, behind ``ahead`` others of the session, will be held
        back by pacing (the ``throttled`` answer of a send)."""
        pace = self._pace(session_id, now)
        return pace.level > 0 or len(pace.recent) + ahead >= self.policy.per_window
