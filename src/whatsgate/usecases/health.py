"""What the operator watches: sessions by status and the outbox depth."""

from __future__ import annotations

from dataclasses import dataclass

from whatsgate.domain.session import SessionStatus
from whatsgate.ports.repositories import UnitOfWorkFactory


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    #: Every status, zero included, so dashboards always see the same series.
    sessions: dict[str, int]
    outbox_depth: int


class ReadHealth:
    """Counts of sessions by status (across organizations) and of messages waiting to be sent."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self) -> Health:
        async with self.uow() as uow:
            counts = await uow.sessions.count_by_status()
            depth = await uow.outbox.pending_count()
        sessions = {str(status): counts.get(str(status), 0) for status in SessionStatus}
        return Health(sessions=sessions, outbox_depth=depth)
