"""Repositories and the unit of work.

``async with uow:`` opens a transaction and exposes the repositories; leaving the block without
``await uow.commit()`` rolls everything back (safe by default). Entities read from a repository
are the caller's copies: a change persists only through ``save``/``add`` and a commit.

Domain events are staged with ``uow.events.add(...)`` and written to the event log by the same
commit as the change that caused them (the transactional outbox).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from whatsgate.domain.auth import ApiKey
from whatsgate.domain.conversation import Contact, Conversation, ConversationStatus
from whatsgate.domain.events import DomainEvent, StoredEvent
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message
from whatsgate.domain.organization import Organization, User
from whatsgate.domain.outbox import OutboxEntry, SendAttempt
from whatsgate.domain.session import Session
from whatsgate.domain.webhook import DeliveryAttempt, DeliveryStatus, Webhook, WebhookDelivery

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationQuery:
    session_id: str
    status: ConversationStatus | None = None
    assignee_id: str | None = None
    unread_only: bool = False
    #: Matches the conversation name, chat JID or contact name, case-insensitively.
    text: str | None = None
    cursor: str | None = None
    limit: int = 50


class OrganizationRepository(Protocol):
    async def add(self, organization: Organization) -> None: ...

    async def get(self, organization_id: str) -> Organization | None: ...

    async def get_by_name(self, name: str) -> Organization | None: ...

    async def all(self) -> list[Organization]: ...


class UserRepository(Protocol):
    async def add(self, user: User) -> None: ...

    async def save(self, user: User) -> None: ...

    async def get(self, user_id: str) -> User | None: ...

    async def in_organization(self, organization_id: str) -> list[User]: ...


class ApiKeyRepository(Protocol):
    """API keys, stored hashed: a key is found by the hash of what the caller presents."""

    async def add(self, key: ApiKey) -> None: ...

    async def save(self, key: ApiKey) -> None: ...

    async def get_by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def for_user(self, user_id: str) -> list[ApiKey]:
        """The user's keys (active or revoked), oldest first."""
        ...


class SessionRepository(Protocol):
    async def add(self, session: Session) -> None: ...

    async def save(self, session: Session) -> None: ...

    async def get(self, session_id: str) -> Session | None: ...

    async def get_many(self, session_ids: Sequence[str]) -> list[Session]:
        """The sessions among ``session_ids`` that exist, by id; one query."""
        ...

    async def all(self, organization_id: str | None = None) -> list[Session]:
        """Every session (of one organization, when given), oldest first."""
        ...

    async def list_desired_running(self) -> list[Session]: ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def clear(self, session_id: str, limit: int) -> int:
        """Remove up to ``limit`` rows of what is under the session (what ``delete``
        removes, with the deliveries of its webhooks and their attempts; the session and its
        webhooks kept); how many it removed, fewer than ``limit`` once nothing is left. A
        large session is deleted in such steps, each its own short unit of work, so that
        other sessions' writers get their turns in between."""
        ...

    async def delete(self, session_id: str) -> None:
        """Remove the session and everything under it (contacts, conversations, messages,
        outbox, events)."""
        ...


class ContactRepository(Protocol):
    async def get_by_jid(self, session_id: str, jid: Jid) -> Contact | None:
        """The contact whose phone JID or LID is ``jid``."""
        ...

    async def get_many(self, session_id: str, jids: Sequence[Jid]) -> list[Contact]:
        """The contacts whose phone JID or LID is one of ``jids``, by id; one query (or a few,
        for many JIDs) in place of one ``get_by_jid`` each."""
        ...

    async def get_many_of_sessions(
        self, session_ids: Sequence[str], jids: Sequence[Jid]
    ) -> list[Contact]:
        """The contacts of any of ``session_ids`` whose phone JID or LID is one of ``jids``, by
        id: ``get_many`` for several sessions at once (a group of live messages)."""
        ...

    async def save(self, contact: Contact) -> None: ...

    async def save_many(self, contacts: Sequence[Contact]) -> None: ...

    async def search(
        self,
        session_id: str,
        *,
        text: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Contact]: ...


@dataclass(slots=True, kw_only=True)
class ConversationView:
    """A conversation as the API shows it (``Conversation.to_dict``: times in ISO 8601 with
    a ``Z``, the chat as text), read straight from storage for lists: no entity on the way.
    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, which
    made building a page of them cost twice as much (bench/rest.py)."""

    id: str
    session_id: str
    chat: str
    is_group: bool
    name: str | None
    status: str
    assignee_id: str | None
    unread_count: int
    last_message_at: str | None
    last_message_preview: str | None
    last_message_id: str | None
    external_ref: str | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationView:
        return cls(**conversation.to_dict())


class ConversationRepository(Protocol):
    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def get_by_chat(self, session_id: str, chat: Jid) -> Conversation | None: ...

    async def get_many_by_chat(self, session_id: str, chats: Sequence[Jid]) -> list[Conversation]:
        """The conversations with any of ``chats``, by id; one query (or a few, for many
        chats) in place of one ``get_by_chat`` each."""
        ...

    async def get_many_by_chat_of_sessions(
        self, session_ids: Sequence[str], chats: Sequence[Jid]
    ) -> list[Conversation]:
        """The conversations of any of ``session_ids`` with any of ``chats``, by id:
        ``get_many_by_chat`` for several sessions at once."""
        ...

    async def save(self, conversation: Conversation) -> None: ...

    async def save_many(self, conversations: Sequence[Conversation]) -> None: ...

    async def search(self, query: ConversationQuery) -> Page[Conversation]:
        """Newest activity first (``last_message_at`` then id, descending)."""
        ...

    async def search_views(self, query: ConversationQuery) -> Page[ConversationView]:
        """``search``'s page as views, ``ConversationView.of`` each (list endpoints)."""
        ...


class MessageRepository(Protocol):
    async def get(self, message_id: str) -> Message | None: ...

    async def get_by_wa_id(self, session_id: str, wa_id: str) -> Message | None: ...

    async def save(self, message: Message) -> None: ...

    async def get_many(self, message_ids: Sequence[str]) -> list[Message]:
        """The messages with these ids (those stored), in one query."""
        ...

    async def save_many(self, messages: Sequence[Message]) -> None: ...

    async def add_new(self, messages: Sequence[Message]) -> list[Message]:
        """Insert the messages whose (session, wa_id) is not stored yet, in one statement;
        returns those inserted. The idempotent path of ingest and history import."""
        ...

    async def existing_wa_ids(self, session_id: str, wa_ids: Sequence[str]) -> set[str]: ...

    async def existing_wa_ids_of_sessions(
        self, session_ids: Sequence[str], wa_ids: Sequence[str]
    ) -> set[tuple[str, str]]:
        """``(session id, WhatsApp id)`` of the stored messages of any of ``session_ids`` with
        any of ``wa_ids``: ``existing_wa_ids`` for several sessions at once."""
        ...

    async def list_for_conversation(
        self, conversation_id: str, *, before: str | None = None, limit: int = 50
    ) -> Page[Message]:
        """A page of messages, oldest to newest, ending just before the ``before`` cursor
        (the newest page when absent); ``next_cursor`` points to older messages."""
        ...


class OutboxRepository(Protocol):
    async def add(self, entry: OutboxEntry) -> None: ...

    async def save(self, entry: OutboxEntry) -> None: ...

    async def get_for_message(self, message_id: str) -> OutboxEntry | None: ...

    async def due(self, now: datetime, *, limit: int = 100) -> list[OutboxEntry]:
        """Pending entries whose time has come, oldest first (claimed with SKIP LOCKED where
        the database can)."""
        ...

    async def heads(self, session_id: str | None = None) -> list[OutboxEntry]:
        """The first pending entry of every session (or of one), in send order
        (``created_at``, then id): a session sends its entries one after the other, so its
        head is the only entry that may go next."""
        ...

    async def fronts(self, session_id: str, *, limit: int) -> list[OutboxEntry]:
        """The first ``limit`` pending entries of one session, in send order (``created_at``,
        then id): the head and the entries that may follow it once it is sent, claimed in one
        statement (with SKIP LOCKED where the database can)."""
        ...

    async def get_many(self, entry_ids: Sequence[str]) -> list[OutboxEntry]:
        """The entries with these ids (those still stored), in one query."""
        ...

    async def save_many(self, entries: Sequence[OutboxEntry]) -> None: ...

    async def pending_count(
        self, session_id: str | None = None, *, limit: int | None = None
    ) -> int:
        """Entries pending (of one session, or all); with ``limit``, at most that many are
        counted (the answer is ``min(count, limit)``), so the cost does not grow with a queue."""
        ...

    async def next_due_at(self) -> datetime | None: ...

    async def add_attempt(self, attempt: SendAttempt) -> None: ...

    async def add_attempts(self, attempts: Sequence[SendAttempt]) -> None:
        """Log several attempts in one statement."""
        ...

    async def attempts_for_message(self, message_id: str) -> list[SendAttempt]: ...


class WebhookRepository(Protocol):
    """Webhooks, their deliveries (one per webhook and event) and the attempt log."""

    async def add(self, webhook: Webhook) -> None: ...

    async def save(self, webhook: Webhook) -> None: ...

    async def get(self, webhook_id: str) -> Webhook | None: ...

    async def clear(self, webhook_id: str, limit: int) -> int:
        """Remove up to ``limit`` of the webhook's deliveries and their attempts (attempts
        first; the webhook kept); how many rows it removed, fewer than ``limit`` once none is
        left. A webhook with many deliveries is deleted in such steps, as a session is."""
        ...

    async def delete(self, webhook_id: str) -> None:
        """Remove the webhook with its deliveries and their attempts."""
        ...

    async def for_organization(self, organization_id: str) -> list[Webhook]:
        """The organization's webhooks (active or not), oldest first."""
        ...

    async def add_delivery(self, delivery: WebhookDelivery) -> bool:
        """Insert unless a delivery of the same event to the same webhook exists (then
        nothing changes and the answer is False): publishing an event twice is harmless."""
        ...

    async def save_delivery(self, delivery: WebhookDelivery) -> None: ...

    async def get_delivery(self, delivery_id: str) -> WebhookDelivery | None: ...

    async def deliveries(
        self,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[WebhookDelivery]:
        """A webhook's deliveries, newest first."""
        ...

    async def due_deliveries(self, now: datetime, *, limit: int = 100) -> list[WebhookDelivery]:
        """Pending deliveries whose time has come, oldest first (claimed with SKIP LOCKED
        where the database can)."""
        ...

    async def next_delivery_at(self) -> datetime | None:
        """When the earliest pending delivery is due; None when none is pending."""
        ...

    async def add_attempt(self, attempt: DeliveryAttempt) -> None: ...

    async def attempts_for(self, delivery_id: str) -> list[DeliveryAttempt]:
        """A delivery's attempts, first to last."""
        ...


class EventLog(Protocol):
    def add(self, *events: DomainEvent) -> None:
        """Stage events; the commit writes them with the change that caused them."""
        ...

    async def after(
        self,
        after_id: int,
        *,
        organization_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Stored events with ``id > after_id``, oldest first."""
        ...

    async def last_id(self) -> int: ...

    async def get_cursor(self, consumer: str) -> int:
        """How far ``consumer`` (a publisher) has been handed the log; 0 when never."""
        ...

    async def set_cursor(self, consumer: str, event_id: int) -> None: ...


#: Called by a unit of work after each commit that stored events, with those events as stored
#: (ids assigned, oldest first): how the event dispatcher learns what to hand out without
#: reading it back from the log.
CommitListener = Callable[[Sequence[StoredEvent]], None]


class UnitOfWork(Protocol):
    organizations: OrganizationRepository
    users: UserRepository
    api_keys: ApiKeyRepository
    sessions: SessionRepository
    contacts: ContactRepository
    conversations: ConversationRepository
    messages: MessageRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository
    events: EventLog

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def begin_write(self) -> None:
        """This unit of work will write over what it reads from here: no other such unit
        of work's change lands in between. Where writers take turns (SQLite: one at a time)
        it takes its turn now, before it reads, not at its first write; where they do not
        (PostgreSQL) the contacts, conversations and messages it reads are locked until it
        ends. Use cases read contacts, then conversations, then messages; where two units of
        work still wait for each other, one fails with ``WriteConflict``, having written
        nothing."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
