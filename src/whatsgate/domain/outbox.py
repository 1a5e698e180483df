"""The outbox: queued sends, their retry ladder and the log of every attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from whatsgate.domain.errors import InvalidInput
from whatsgate.domain.ids import new_id


class OutboxState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Waits between attempts (the last step repeats) and the number of attempts in all."""

    ladder: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0)
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if not self.ladder or any(step < 0 for step in self.ladder):
            raise InvalidInput("The retry ladder needs at least one non-negative step.")
        if self.max_attempts < 1:
            raise InvalidInput("At least one attempt is needed.")

    def delay_after(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        step = self.ladder[min(attempts, len(self.ladder)) - 1]
        return timedelta(seconds=step)


@dataclass(eq=False, slots=True, kw_only=True)
class OutboxEntry:
    """One message waiting to be sent (or done, or failed for good)."""

    id: str = field(default_factory=new_id)
    organization_id: str
    session_id: str
    message_id: str
    state: OutboxState = OutboxState.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    #: True while pacing holds the entry back ("queued to avoid block").
    throttled: bool = False
    created_at: datetime
    updated_at: datetime

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutboxEntry) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_pending(self) -> bool:
        return self.state is OutboxState.PENDING

    def hold(self, until: datetime, at: datetime, *, throttled: bool) -> None:
        """Postpone without spending an attempt (pacing, a ban, a rate limit, no connection)."""
        self.next_attempt_at = until
        self.throttled = throttled
        self.updated_at = at

    def succeed(self, at: datetime) -> None:
        self.attempts += 1
        self.state = OutboxState.DONE
        self.last_error = None
        self.throttled = False
        self.updated_at = at

    def fail_attempt(self, error: str, at: datetime, policy: RetryPolicy) -> bool:
        """Record a failed attempt; True if it was the last one (the entry is failed)."""
        self.attempts += 1
        self.last_error = error
        self.throttled = False
        self.updated_at = at
        if self.attempts >= policy.max_attempts:
            self.state = OutboxState.FAILED
            return True
        self.next_attempt_at = at + policy.delay_after(self.attempts)
        return False

    def give_up(self, error: str, at: datetime) -> None:
        """A failed attempt no retry can mend (the content itself is refused): failed now."""
        self.attempts += 1
        self.last_error = error
        self.throttled = False
        self.state = OutboxState.FAILED
        self.updated_at = at


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAttempt:
    """The log line of one send attempt: what was asked, how long it took, what came back."""

    id: str = field(default_factory=new_id)
    organization_id: str
    session_id: str
    outbox_id: str
    message_id: str
    attempt: int
    started_at: datetime
    latency_ms: float
    request_summary: str
    ok: bool
    response: str | None = None
    error: str | None = None
