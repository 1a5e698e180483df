"""Wires the use cases on the in-memory fakes, as the container does for real."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message, MessageKind
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.outbox import OutboxEntry, SendAttempt
from whatsgate.domain.pacing import SendPacer
from whatsgate.domain.session import Session
from whatsgate.ports.engine import ContactsBatch, HistoryBatch, IncomingMessage, Presence, Receipt
from whatsgate.testing import (
    FakeClock,
    FakeEngine,
    MemoryMediaStore,
    MemoryStore,
    MemoryUnitOfWork,
    RecordingPublisher,
)
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.dispatch import EventDispatcher
from whatsgate.usecases.engine_events import EngineEventRouter
from whatsgate.usecases.history import (
    HistorySettings,
    ImportHistory,
    RequestHistorySync,
    SyncContacts,
)
from whatsgate.usecases.inbox import (
    AssignConversation,
    GetMessages,
    ListConversations,
    MarkConversationRead,
    ProcessPresence,
    ProcessReceipt,
    SendTyping,
    SetConversationStatus,
    UpdateContact,
    UpdateConversation,
)
from whatsgate.usecases.ingest import (
    IncomingMessageCommand,
    IngestResult,
    IngestSettings,
    ProcessIncomingMessage,
)
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
    #: No group-commit window by default: messages given in the same loop turn still share
    #: a unit of work, and no test has to move the clock for an ingest to commit.
    ingest_settings: IngestSettings = field(default_factory=lambda: IngestSettings(group_window=0))
    history_settings: HistorySettings = field(default_factory=HistorySettings)

    def __post_init__(self) -> None:
        if self.engine is None:
            self.engine = FakeEngine(self.clock)
        self.build()

    @property
    def fake(self) -> FakeEngine:
        assert self.engine is not None
        return self.engine

    def uow(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.store, on_commit=self._committed)

    def _committed(self, events: Sequence[StoredEvent]) -> None:
        dispatcher = getattr(self, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.wake(events)

    def build(self) -> None:
        """(Re)build every use case object over the same store and engine: a "restart"."""
        self.connections = SessionConnections(self.fake, self.clock)
        s = self.settings
        self.create = CreateSession(self.uow, self.clock)
        self.initialize = InitializeWhatsAppClient(self.uow, self.connections, self.clock, s)
        #: The outbox worker's wake-up, shared by SendMessage and a session's connect.
        self.wake = asyncio.Event()
        self.update = UpdateUserWhatsAppSession(
            self.uow, self.connections, self.clock, s, self.wake
        )
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
        self.send = SendMessage(self.uow, self.clock, self.media, self.pacer, self.wake)
        self.deliver = DeliverOutbox(
            self.uow, self.connections, self.clock, self.media, self.pacer, o, random.Random(13)
        )
        self.outbox_worker = OutboxWorker(self.deliver, self.clock, self.wake)
        self.check_numbers = CheckNumbers(
            self.uow, self.connections, self.clock, self.check_settings, random.Random(17)
        )
        self.get_media = GetMessageMedia(self.uow, self.connections, self.media)
        # Messaging: ingest, inbox, history, and the event log's dispatcher.
        self.publisher = RecordingPublisher()
        self.dispatcher = EventDispatcher(self.uow, {"recording": self.publisher}, self.clock)
        self.ingest = ProcessIncomingMessage(self.uow, self.clock, self.ingest_settings)
        self.receipts = ProcessReceipt(self.uow, self.clock)
        self.presence = ProcessPresence(self.uow, self.clock)
        self.import_history = ImportHistory(self.uow, self.clock, self.history_settings)
        self.sync_contacts = SyncContacts(self.uow, self.connections, self.clock)
        self.request_history = RequestHistorySync(self.uow, self.connections)
        self.list_conversations = ListConversations(self.uow)
        self.get_messages = GetMessages(self.uow)
        self.assign = AssignConversation(self.uow, self.clock)
        self.set_status = SetConversationStatus(self.uow, self.clock)
        self.update_conversation = UpdateConversation(self.uow, self.clock)
        self.update_contact = UpdateContact(self.uow, self.clock)
        self.mark_read = MarkConversationRead(self.uow, self.connections, self.clock)
        self.send_typing = SendTyping(self.uow, self.connections)
        self.router.register(IncomingMessage, self.ingest.handle)
        self.router.register(Receipt, self.receipts.handle)
        self.router.register(Presence, self.presence.handle)
        self.router.register(HistoryBatch, self.import_history.handle)
        self.router.register(ContactsBatch, self.sync_contacts.handle)

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

    async def connected_session(self, name: str = "sales", phone: str = "5511900000000") -> Session:
        """A session paired and connected on the fake engine."""
        session = await self.new_session(name)
        await self.initialize(InitializeCommand(session_id=session.id))
        await self.fake.scan(session.id, phone=phone)
        return await self.session(session.id)

    async def receive(self, session_id: str, message: IncomingMessage) -> IngestResult:
        return await self.ingest(IncomingMessageCommand(session_id=session_id, message=message))

    async def conversation(self, session_id: str, chat: str) -> Conversation:
        async with self.uow() as uow:
            found = await uow.conversations.get_by_chat(session_id, Jid.parse(chat))
        assert found is not None, f"no conversation with {chat}"
        return found

    async def message_by_wa_id(self, session_id: str, wa_id: str) -> Message:
        async with self.uow() as uow:
            found = await uow.messages.get_by_wa_id(session_id, wa_id)
        assert found is not None, f"no message {wa_id}"
        return found

    async def contact(self, session_id: str, jid: str) -> Contact:
        async with self.uow() as uow:
            found = await uow.contacts.get_by_jid(session_id, Jid.parse(jid))
        assert found is not None, f"no contact {jid}"
        return found


class _Counted:
    """A repository whose ``get…`` calls are counted (as ``<name>.<method>``)."""

    def __init__(
        self, inner: object, name: str, calls: Counter[str], prefixes: tuple[str, ...] = ("get",)
    ) -> None:
        self._inner = inner
        self._name = name
        self._calls = calls
        self._prefixes = prefixes

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self._inner, attr)
        if not attr.startswith(self._prefixes):
            return method

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[f"{self._name}.{attr}"] += 1
            return await method(*args, **kwargs)

        return counted


class CountingUnitOfWork(MemoryUnitOfWork):
    """A memory unit of work counting the contact and conversation look-ups that reach its
    repositories (each a round trip to a database)."""

    def __init__(self, store: MemoryStore, calls: Counter[str]) -> None:
        self.calls = calls
        super().__init__(store)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.contacts = _Counted(self.contacts, "contacts", self.calls)
        self.conversations = _Counted(self.conversations, "conversations", self.calls)
        return self


def counting(store: MemoryStore, calls: Counter[str]) -> Callable[[], CountingUnitOfWork]:
    return lambda: CountingUnitOfWork(store, calls)


class CountingEveryLookup(CountingUnitOfWork):
    """Also counts the session look-ups and the known-WhatsApp-id checks."""

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.sessions = _Counted(self.sessions, "sessions", self.calls)
        self.messages = _Counted(self.messages, "messages", self.calls, ("get", "existing"))
        return self


class FailingCommits(MemoryUnitOfWork):
    """A memory unit of work whose commit raises the next of ``failures`` (taking it) while
    any is left: the database ending a unit of work, which then wrote nothing."""

    def __init__(self, store: MemoryStore, failures: list[Exception]) -> None:
        self.failures = failures
        super().__init__(store)

    async def commit(self) -> None:
        if self.failures:
            raise self.failures.pop()
        await super().commit()


def failing_commits(store: MemoryStore, failures: list[Exception]) -> Callable[[], FailingCommits]:
    return lambda: FailingCommits(store, failures)


ALICE = "5566996285154@s.whatsapp.net"
ALICE_LID = "271234567890123@lid"
BOB = "5511988887777@s.whatsapp.net"
GROUP = "120363012345678901@g.us"


def incoming(
    wa_id: str,
    *,
    chat: str = ALICE,
    sender: str | None = None,
    at: datetime | None = None,
    kind: MessageKind = MessageKind.TEXT,
    text: str | None = "hello",
    **fields: Any,
) -> IncomingMessage:
    """An engine message as WhatsApp would hand it over; ``sender`` defaults to the chat."""
    return IncomingMessage(
        wa_id=wa_id,
        chat=Jid.parse(chat),
        sender=Jid.parse(sender or chat) if sender or not chat.endswith("@g.us") else None,
        timestamp=at or datetime(2026, 1, 1, 11, 0, tzinfo=UTC),
        kind=kind,
        text=text,
        **fields,
    )
