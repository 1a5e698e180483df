"""Changing a session's name and sharing, and putting every session to rest at shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from whatsgate.domain.errors import AlreadyExists, InvalidInput, SessionNotFound
from whatsgate.domain.session import Session, SessionStatus, StopReason
from whatsgate.ports.clock import Clock
from whatsgate.ports.repositories import UnitOfWorkFactory
from whatsgate.usecases._status import record_status
from whatsgate.usecases.connections import SessionConnections

log = logging.getLogger("whatsgate.sessions")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSessionCommand:
    session_id: str
    name: str | None = None
    #: The agents the session is shared with (replaces the list).
    shared_with: frozenset[str] | None = None


class UpdateSession:
    """Rename a session or choose the agents it is shared with.

    - Names stay unique within the organization (``already_exists``).
    - Only users of the same organization can be given the session.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, command: UpdateSessionCommand) -> Session:
        async with self.uow() as uow:
            session = await uow.sessions.get(command.session_id)
            if session is None:
                raise SessionNotFound(session_id=command.session_id)
            if command.name is not None:
                session.rename(command.name)
                others = await uow.sessions.all(session.organization_id)
                if any(s.name == session.name and s.id != session.id for s in others):
                    raise AlreadyExists(
                        f"A session named {session.name!r} already exists.", field="name"
                    )
            if command.shared_with is not None:
                members = {u.id for u in await uow.users.in_organization(session.organization_id)}
                unknown = sorted(command.shared_with - members)
                if unknown:
                    raise InvalidInput(
                        "Sessions can only be shared with users of the organization.",
                        field="shared_with",
                        unknown=unknown,
                    )
                session.share_with(command.shared_with)
            await uow.sessions.save(session)
            await uow.commit()
        return session


class SuspendSessions:
    """Server shutdown: every open session is disconnected and marked ``stopped`` (reason
    ``shutdown``) while keeping its desired state, so the next start restores it."""

    def __init__(
        self, uow: UnitOfWorkFactory, connections: SessionConnections, clock: Clock
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock

    async def __call__(self) -> list[str]:
        suspended = []
        for sid in self.connections.open_sessions():
            async with self.connections.lock(sid):
                try:
                    async with self.uow() as uow:
                        session = await uow.sessions.get(sid)
                        if session is not None and session.status is not SessionStatus.STOPPED:
                            change = session.mark_stopped(
                                StopReason.SHUTDOWN, self.clock.now(), keep_desired=True
                            )
                            record_status(uow, session, change)
                            await uow.sessions.save(session)
                            await uow.commit()
                except Exception:
                    log.exception("session %s: could not record the shutdown", sid)
                await self.connections.close(sid)
            suspended.append(sid)
        await self.connections.shutdown()
        return suspended
