"""Pairing from the API: the QR code of a session, and the caller's own session."""

from __future__ import annotations

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import QrNotReady, SessionAlreadyConnected, SessionNotFound
from whatsgate.domain.session import Session
from whatsgate.ports.repositories import UnitOfWorkFactory
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.sessions import (
    CreateSession,
    CreateSessionCommand,
    InitializeCommand,
    InitializeWhatsAppClient,
    SessionSettings,
)


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
