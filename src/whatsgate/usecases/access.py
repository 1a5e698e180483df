"""Tenancy: what a principal may see and change, checked before any other use case runs.

Every lookup by id goes through here, so nothing of one organization is ever visible to
another: a thing of another organization is "not found", exactly like a thing that does not
exist (its existence is private). Inside the organization, an agent who may not see a session
gets ``permission_denied``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from whatsgate.domain.auth import Principal
from whatsgate.domain.conversation import Conversation
from whatsgate.domain.errors import (
    AlreadyExists,
    ConversationNotFound,
    InvalidInput,
    MessageNotFound,
    PermissionDenied,
    QrNotReady,
    SessionAlreadyConnected,
    SessionNotFound,
)
from whatsgate.domain.message import Message
from whatsgate.domain.session import Session, SessionStatus, StopReason
from whatsgate.ports.clock import Clock
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory
from whatsgate.usecases._status import record_status
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.sessions import (
    CreateSession,
    CreateSessionCommand,
    InitializeCommand,
    InitializeWhatsAppClient,
    SessionSettings,
)

log = logging.getLogger("whatsgate.access")


async def _session_for(uow: UnitOfWork, principal: Principal, session_id: str) -> Session:
    session = await uow.sessions.get(session_id)
    if session is None or session.organization_id != principal.organization_id:
        raise SessionNotFound(session_id=session_id)
    if not principal.can_see(session):
        raise PermissionDenied("This session is not shared with you.", session_id=session_id)
    return session


def _can_manage(principal: Principal, session: Session) -> bool:
    return principal.is_admin or session.owner_id == principal.user_id


class Access:
    """Principal-scoped lookups.

    - Sessions: admins see every session of their organization; agents those they own or
      that are shared with them. Renaming, sharing and deleting need an admin or the owner.
    - Conversations: visible with their session, and to the agent they are assigned to.
    - Messages: visible with their conversation.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def session(
        self, principal: Principal, session_id: str, *, manage: bool = False
    ) -> Session:
        async with self.uow() as uow:
            session = await _session_for(uow, principal, session_id)
        if manage and not _can_manage(principal, session):
            raise PermissionDenied(
                "Only an admin or the session's owner may do that.", session_id=session_id
            )
        return session

    async def sessions(self, principal: Principal) -> list[Session]:
        async with self.uow() as uow:
            found = await uow.sessions.all(principal.organization_id)
        return [s for s in found if principal.can_see(s)]

    async def conversation(self, principal: Principal, conversation_id: str) -> Conversation:
        async with self.uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
            if conversation is None or conversation.organization_id != principal.organization_id:
                raise ConversationNotFound(conversation_id=conversation_id)
            if conversation.assignee_id == principal.user_id:
                return conversation
            await _session_for(uow, principal, conversation.session_id)
        return conversation

    async def message(self, principal: Principal, message_id: str) -> Message:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id)
        if message is None or message.organization_id != principal.organization_id:
            raise MessageNotFound(message_id=message_id)
        await self.conversation(principal, message.conversation_id)
        return message


# -- changing a session ---------------------------------------------------------------------


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


class OwnDefaultSession:
    """The caller's own session (``GET /whatsapp/qr``): their oldest, made on first use.

    - It is named after the user; ``-2``, ``-3``… when that name is taken.
    """

    def __init__(self, uow: UnitOfWorkFactory, create: CreateSession) -> None:
        self.uow = uow
        self.create = create

    async def __call__(self, principal: Principal) -> Session:
        async with self.uow() as uow:
            sessions = await uow.sessions.all(principal.organization_id)
            user = await uow.users.get(principal.user_id)
        owned = [s for s in sessions if s.owner_id == principal.user_id]
        if owned:
            return owned[0]
        base = (user.name if user else "whatsapp")[:90]
        taken = {s.name for s in sessions}
        name = base
        suffix = 1
        while name in taken:
            suffix += 1
            name = f"{base}-{suffix}"
        return await self.create(
            CreateSessionCommand(
                organization_id=principal.organization_id, owner_id=principal.user_id, name=name
            )
        )


class GetQrCode:
    """The QR code to pair a session.

    - A paired session has none: ``already_connected``.
    - A session that is not running (stopped, logged out, failed…) is started, and the first
      QR is awaited briefly; a starting one is waited for the same way.
    - The answer may still carry no QR (the engine is slow or cannot reach WhatsApp): the
      status tells why; ask again.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        initialize: InitializeWhatsAppClient,
        settings: SessionSettings,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.initialize = initialize
        self.settings = settings

    async def __call__(self, session_id: str) -> Session:
        async with self.uow() as uow:
            session = await uow.sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id=session_id)
        if session.is_paired:
            raise SessionAlreadyConnected(session_id=session_id)
        if not (session.is_running and self.connections.is_open(session_id)):
            session = (await self.initialize(InitializeCommand(session_id=session_id))).session
        elif session.qr is None:
            await self.connections.wait_ready(session_id, self.settings.ready_timeout)
            async with self.uow() as uow:
                session = await uow.sessions.get(session_id) or session
        if session.is_paired:
            raise SessionAlreadyConnected(session_id=session_id)
        return session


def require_qr(session: Session) -> str:
    """The session's QR, or ``qr_not_ready`` (for answers that must be an image)."""
    if session.qr is None:
        raise QrNotReady(session_id=session.id, status=str(session.status))
    return session.qr


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
