"""One place where a session's status change is logged and turned into an event."""

from __future__ import annotations

import logging

from whatsgate.domain.events import SessionStatusChanged
from whatsgate.domain.session import Session, StatusChange
from whatsgate.ports.repositories import UnitOfWork

log = logging.getLogger("whatsgate.sessions")


def record_status(uow: UnitOfWork, session: Session, change: StatusChange | None) -> None:
    """Log the change (session id, old and new status, reason) and stage ``session.status``.

    Call it inside the unit of work that saves the session, so the event and the change commit
    together.
    """
    if change is None:
        return
    log.info(
        "session %s: %s -> %s (reason: %s)",
        change.session_id,
        change.previous,
        change.current,
        change.reason or "-",
        extra={
            "session_id": change.session_id,
            "old_status": str(change.previous),
            "new_status": str(change.current),
            "reason": change.reason,
        },
    )
    uow.events.add(SessionStatusChanged.of(session, change.at, str(change.previous)))
