"""Wires the session use cases on the in-memory fakes, as the container does for real."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from whatsgate.domain.events import StoredEvent
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.session import Session
from whatsgate.testing import FakeClock, FakeEngine, MemoryMediaStore, MemoryStore, MemoryUnitOfWork
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.engine_events import EngineEventRouter
from whatsgate.usecases.sessions import (
    CreateSession,
    CreateSessionCommand,
    DeleteSession,
    HandleDisconnect,
    InitializeWhatsAppClient,
    LogoutSession,
    RequestPairingCode,
    RestoreSessions,
    SessionSettings,
    StopSession,
    UpdateUserWhatsAppSession,
)


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=FakeClock)
    settings: SessionSettings = field(default_factory=SessionSettings)
    media: MemoryMediaStore = field(default_factory=MemoryMediaStore)
    engine: FakeEngine | None = None

    def __post_init__(self) -> None:
        if self.engine is None:
            self.engine = FakeEngine(self.clock)
        self.build()

    @property
    def fake(self) -> FakeEngine:
        assert self.engine is not None
        return self.engine

    def uow(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.store)

    def build(self) -> None:
        """(Re)build every use case object over the same store and engine: a "restart"."""
        self.connections = SessionConnections(self.fake, self.clock)
        s = self.settings
        self.create = CreateSession(self.uow, self.clock)
        self.initialize = InitializeWhatsAppClient(self.uow, self.connections, self.clock, s)
        self.update = UpdateUserWhatsAppSession(self.uow, self.connections, self.clock, s)
        self.disconnect = HandleDisconnect(
            self.uow, self.connections, self.clock, s, random.Random(7)
        )
        self.stop = StopSession(self.uow, self.connections, self.clock)
        self.logout = LogoutSession(self.uow, self.connections, self.clock)
        self.delete = DeleteSession(self.uow, self.connections, self.media)
        self.restore = RestoreSessions(self.uow, self.initialize, s)
        self.pairing_code = RequestPairingCode(
            self.uow, self.connections, self.initialize, self.clock
        )
        self.router = EngineEventRouter(self.update, self.disconnect)
        self.connections.bind(self.router)

    async def organization(self, name: str = "Acme") -> tuple[Organization, User]:
        now = self.clock.now()
        org = Organization(name=name, created_at=now)
        admin = User(organization_id=org.id, name="Ana", role=Role.ADMIN, created_at=now)
        async with self.uow() as uow:
            await uow.organizations.add(org)
            await uow.users.add(admin)
            await uow.commit()
        return org, admin

    async def new_session(self, name: str = "sales") -> Session:
        org, admin = await self.organization()
        return await self.create(
            CreateSessionCommand(organization_id=org.id, owner_id=admin.id, name=name)
        )

    async def session(self, session_id: str) -> Session:
        async with self.uow() as uow:
            found = await uow.sessions.get(session_id)
        assert found is not None
        return found

    def events(self, name: str | None = None) -> list[StoredEvent]:
        return [e for e in self.store.events if name is None or e.name == name]

    def statuses(self, session_id: str) -> list[str]:
        return [
            e.data["status"]
            for e in self.store.events
            if e.name == "session.status" and e.session_id == session_id
        ]
