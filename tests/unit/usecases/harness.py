"""Wires the session use cases on the in-memory fakes, as the container does for real."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from whatsgate.domain.events import StoredEvent
from whatsgate.domain.message import Message
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.outbox import OutboxEntry, SendAttempt
from whatsgate.domain.pacing import SendPacer
from whatsgate.domain.session import Session
from whatsgate.testing import FakeClock, FakeEngine, MemoryMediaStore, MemoryStore, MemoryUnitOfWork
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.engine_events import EngineEventRouter
from whatsgate.usecases.media import GetMessageMedia
from whatsgate.usecases.outbox import DeliverOutbox, OutboxSettings, OutboxWorker
from whatsgate.usecases.send import CheckNumbers, CheckNumbersSettings, SendMessage
from whatsgate.usecases.sessions import (
    CreateSession,
    CreateSessionCommand,
    DeleteSession,
    HandleDisconnect,
    InitializeCommand,
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
    outbox_settings: OutboxSettings = field(default_factory=OutboxSettings)
    check_settings: CheckNumbersSettings = field(default_factory=CheckNumbersSettings)

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
        # Sending: one pacer and one wake-up shared by SendMessage and the outbox worker.
        o = self.outbox_settings
        self.pacer = SendPacer(o.pacing, random.Random(11))
        self.wake = asyncio.Event()
        self.send = SendMessage(self.uow, self.clock, self.media, self.pacer, self.wake)
        self.deliver = DeliverOutbox(
            self.uow, self.connections, self.clock, self.media, self.pacer, o, random.Random(13)
        )
        self.outbox_worker = OutboxWorker(self.deliver, self.clock, self.wake)
        self.check_numbers = CheckNumbers(
            self.uow, self.connections, self.clock, self.check_settings, random.Random(17)
        )
        self.get_media = GetMessageMedia(self.uow, self.connections, self.media)

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

    async def connected_session(self, phone: str = "5566996285154") -> Session:
        """A session started, paired and connected on the fake engine."""
        session = await self.new_session()
        await self.initialize(InitializeCommand(session_id=session.id))
        await self.fake.scan(session.id, phone=phone)
        return await self.session(session.id)

    async def message(self, message_id: str) -> Message:
        async with self.uow() as uow:
            found = await uow.messages.get(message_id)
        assert found is not None
        return found

    async def outbox_entry(self, message_id: str) -> OutboxEntry:
        async with self.uow() as uow:
            found = await uow.outbox.get_for_message(message_id)
        assert found is not None
        return found

    async def attempts(self, message_id: str) -> list[SendAttempt]:
        async with self.uow() as uow:
            return await uow.outbox.attempts_for_message(message_id)

    def events(self, name: str | None = None) -> list[StoredEvent]:
        return [e for e in self.store.events if name is None or e.name == name]

    def statuses(self, session_id: str) -> list[str]:
        return [
            e.data["status"]
            for e in self.store.events
            if e.name == "session.status" and e.session_id == session_id
        ]
