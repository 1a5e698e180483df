"""In-memory unit of work with the same semantics as the SQL one.

Reads return copies; writes are staged and applied only by ``commit``; leaving the block
without a commit discards them. So a test on these fakes proves the same transactional
behaviour the database gives.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from whatsgate.domain.auth import ApiKey
from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.errors import AlreadyExists
from whatsgate.domain.events import DomainEvent, StoredEvent
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message
from whatsgate.domain.organization import Organization, User
from whatsgate.domain.outbox import OutboxEntry, OutboxState, SendAttempt
from whatsgate.domain.pagination import decode_cursor, encode_cursor
from whatsgate.domain.session import Session
from whatsgate.domain.webhook import DeliveryAttempt, DeliveryStatus, Webhook, WebhookDelivery
from whatsgate.ports.repositories import (
    ApiKeyRepository,
    CommitListener,
    ContactRepository,
    ConversationQuery,
    ConversationRepository,
    ConversationView,
    EventLog,
    MessageRepository,
    OrganizationRepository,
    OutboxRepository,
    Page,
    SessionRepository,
    UnitOfWork,
    UserRepository,
    WebhookRepository,
)

V = TypeVar("V")
_DELETED = object()
_EPOCH = datetime.min


@dataclass
class MemoryStore:
    """The committed state, shared by every unit of work made on it."""

    organizations: dict[str, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    outbox: dict[str, OutboxEntry] = field(default_factory=dict)
    attempts: dict[str, SendAttempt] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    deliveries: dict[str, WebhookDelivery] = field(default_factory=dict)
    delivery_attempts: dict[str, DeliveryAttempt] = field(default_factory=dict)
    events: list[StoredEvent] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    #: The last event id handed out; ids are never reused, even once their events are gone.
    last_event_id: int = 0
    commits: int = 0


class _Table(Generic[V]):
    """A committed dict seen through this unit of work's staged writes."""

    def __init__(self, committed: dict[str, V]) -> None:
        self.committed = committed
        self.staged: dict[str, object] = {}

    def get(self, key: str) -> V | None:
        value = self.staged.get(key, self.committed.get(key))
        if value is None or value is _DELETED:
            return None
        return copy.deepcopy(value)  # type: ignore[return-value]

    def put(self, key: str, value: V) -> None:
        self.staged[key] = copy.deepcopy(value)

    def delete(self, key: str) -> None:
        self.staged[key] = _DELETED

    def values(self) -> Iterator[V]:
        for key in self.committed.keys() | self.staged.keys():
            value = self.get(key)
            if value is not None:
                yield value

    def raw(self) -> Iterator[V]:
        """The current values, not copied: only for reading them to filter."""
        for key in self.committed.keys() | self.staged.keys():
            value = self.staged.get(key, self.committed.get(key))
            if value is not None and value is not _DELETED:
                yield value  # type: ignore[misc]

    def where(self, predicate: Callable[[V], bool]) -> list[V]:
        """Copies of the values that match (filtered before copying: scans stay cheap)."""
        return [copy.deepcopy(v) for v in self.raw() if predicate(v)]

    def first(self, predicate: Callable[[V], bool]) -> V | None:
        found = next((v for v in self.raw() if predicate(v)), None)
        return copy.deepcopy(found) if found is not None else None

    def apply(self) -> None:
        for key, value in self.staged.items():
            if value is _DELETED:
                self.committed.pop(key, None)
            else:
                self.committed[key] = value  # type: ignore[assignment]
        self.staged.clear()


class _Organizations(OrganizationRepository):
    def __init__(self, table: _Table[Organization]) -> None:
        self.t = table

    async def add(self, organization: Organization) -> None:
        self.t.put(organization.id, organization)

    async def get(self, organization_id: str) -> Organization | None:
        return self.t.get(organization_id)

    async def get_by_name(self, name: str) -> Organization | None:
        return next((o for o in self.t.values() if o.name == name), None)

    async def all(self) -> list[Organization]:
        return sorted(self.t.values(), key=lambda o: o.id)


class _Users(UserRepository):
    def __init__(self, table: _Table[User]) -> None:
        self.t = table

    async def add(self, user: User) -> None:
        self.t.put(user.id, user)

    async def save(self, user: User) -> None:
        self.t.put(user.id, user)

    async def get(self, user_id: str) -> User | None:
        return self.t.get(user_id)

    async def in_organization(self, organization_id: str) -> list[User]:
        users = [u for u in self.t.values() if u.organization_id == organization_id]
        return sorted(users, key=lambda u: u.id)


class _ApiKeys(ApiKeyRepository):
    def __init__(self, table: _Table[ApiKey]) -> None:
        self.t = table

    async def add(self, key: ApiKey) -> None:
        self.t.put(key.id, key)

    async def save(self, key: ApiKey) -> None:
        self.t.put(key.id, key)

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k in self.t.values() if k.key_hash == key_hash), None)

    async def for_user(self, user_id: str) -> list[ApiKey]:
        return sorted((k for k in self.t.values() if k.user_id == user_id), key=lambda k: k.id)


class _Sessions(SessionRepository):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self.uow = uow
        self.t = uow.tables.sessions

    async def add(self, session: Session) -> None:
        self.t.put(session.id, session)

    async def save(self, session: Session) -> None:
        self.t.put(session.id, session)

    async def get(self, session_id: str) -> Session | None:
        return self.t.get(session_id)

    async def get_many(self, session_ids: Sequence[str]) -> list[Session]:
        found = [s for s in (self.t.get(i) for i in set(session_ids)) if s is not None]
        return sorted(found, key=lambda s: s.id)

    async def all(self, organization_id: str | None = None) -> list[Session]:
        found = [s for s in self.t.values() if organization_id in (None, s.organization_id)]
        return sorted(found, key=lambda s: s.id)

    async def list_desired_running(self) -> list[Session]:
        return [s for s in await self.all() if s.desired_running]

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.t.values():
            counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        return counts

    async def clear(self, session_id: str, limit: int) -> int:
        tables = self.uow.tables
        removed = 0
        for hook in [w.id for w in tables.webhooks.values() if w.session_id == session_id]:
            removed += await self.uow.webhooks.clear(hook, limit - removed)
        under: list[_Table[Any]] = [
            tables.attempts,
            tables.outbox,
            tables.messages,
            tables.conversations,
            tables.contacts,
        ]
        for table in under:
            removed += _delete_where(table, session_id, limit - removed)
        store = self.uow.store
        events = [e.id for e in store.events if e.session_id == session_id]
        staged = self.uow.cleared_events
        events = [i for i in events if i not in staged][: max(0, limit - removed)]
        staged.update(events)
        return removed + len(events)

    async def delete(self, session_id: str) -> None:
        tables = self.uow.tables
        self.t.delete(session_id)
        _delete_where(tables.contacts, session_id)
        _delete_where(tables.conversations, session_id)
        _delete_where(tables.messages, session_id)
        _delete_where(tables.outbox, session_id)
        _delete_where(tables.attempts, session_id)
        for webhook_id in [w.id for w in tables.webhooks.raw() if w.session_id == session_id]:
            self.uow.webhooks.drop(webhook_id)
        self.uow.deleted_sessions.add(session_id)


class _Contacts(ContactRepository):
    def __init__(self, table: _Table[Contact]) -> None:
        self.t = table

    async def get_by_jid(self, session_id: str, jid: Jid) -> Contact | None:
        return self.t.first(lambda c: c.session_id == session_id and jid in (c.jid, c.lid))

    async def get_many(self, session_id: str, jids: Sequence[Jid]) -> list[Contact]:
        wanted = set(jids)
        found = self.t.where(
            lambda c: c.session_id == session_id and (c.jid in wanted or c.lid in wanted)
        )
        return sorted(found, key=lambda c: c.id)

    async def get_many_of_sessions(
        self, session_ids: Sequence[str], jids: Sequence[Jid]
    ) -> list[Contact]:
        sessions, wanted = set(session_ids), set(jids)
        found = self.t.where(
            lambda c: c.session_id in sessions and (c.jid in wanted or c.lid in wanted)
        )
        return sorted(found, key=lambda c: c.id)

    async def save(self, contact: Contact) -> None:
        self.t.put(contact.id, contact)

    async def save_many(self, contacts: Sequence[Contact]) -> None:
        for contact in contacts:
            self.t.put(contact.id, contact)

    async def search(
        self,
        session_id: str,
        *,
        text: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Contact]:
        needle = (text or "").casefold()
        found = [
            c
            for c in self.t.values()
            if c.session_id == session_id
            and (
                not needle
                or any(
                    needle in (v or "").casefold()
                    for v in (c.name, c.push_name, c.business_name, str(c.jid))
                )
            )
        ]
        found.sort(key=lambda c: c.id)
        if cursor:
            _, after = decode_cursor(cursor)
            found = [c for c in found if c.id > after]
        page = found[:limit]
        more = len(found) > limit
        return Page(page, encode_cursor(None, page[-1].id) if more and page else None)


class _Conversations(ConversationRepository):
    def __init__(self, table: _Table[Conversation], contacts: _Table[Contact]) -> None:
        self.t = table
        self.contacts = contacts

    async def get(self, conversation_id: str) -> Conversation | None:
        return self.t.get(conversation_id)

    async def get_by_chat(self, session_id: str, chat: Jid) -> Conversation | None:
        return self.t.first(lambda c: c.session_id == session_id and c.chat == chat)

    async def get_many_by_chat(self, session_id: str, chats: Sequence[Jid]) -> list[Conversation]:
        wanted = set(chats)
        found = self.t.where(lambda c: c.session_id == session_id and c.chat in wanted)
        return sorted(found, key=lambda c: c.id)

    async def get_many_by_chat_of_sessions(
        self, session_ids: Sequence[str], chats: Sequence[Jid]
    ) -> list[Conversation]:
        sessions, wanted = set(session_ids), set(chats)
        found = self.t.where(lambda c: c.session_id in sessions and c.chat in wanted)
        return sorted(found, key=lambda c: c.id)

    async def save(self, conversation: Conversation) -> None:
        await self.save_many([conversation])

    async def save_many(self, conversations: Sequence[Conversation]) -> None:
        for conversation in conversations:
            # One conversation per (session, chat), as the database's unique index enforces.
            clash = await self.get_by_chat(conversation.session_id, conversation.chat)
            if clash is not None and clash.id != conversation.id:
                raise AlreadyExists(
                    f"The session already has a conversation with {conversation.chat}."
                )
            self.t.put(conversation.id, conversation)

    def _matches(self, c: Conversation, q: ConversationQuery) -> bool:
        if c.session_id != q.session_id:
            return False
        if q.status is not None and c.status is not q.status:
            return False
        if q.assignee_id is not None and c.assignee_id != q.assignee_id:
            return False
        if q.unread_only and c.unread_count == 0:
            return False
        if q.text:
            needle = q.text.casefold()
            names = [c.name, str(c.chat)]
            names += [
                n
                for contact in self.contacts.raw()
                if contact.session_id == c.session_id and c.chat in (contact.jid, contact.lid)
                for n in (contact.name, contact.push_name)
            ]
            if not any(needle in (n or "").casefold() for n in names):
                return False
        return True

    async def search(self, query: ConversationQuery) -> Page[Conversation]:
        found = self.t.where(lambda c: self._matches(c, query))

        def key(c: Conversation) -> tuple[datetime, str]:
            return (_naive(c.last_message_at or c.created_at), c.id)

        found.sort(key=key, reverse=True)
        if query.cursor:
            at, after = decode_cursor(query.cursor)
            bound = (_naive(at) if at else _EPOCH, after)
            found = [c for c in found if key(c) < bound]
        page = found[: query.limit]
        more = len(found) > query.limit
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = encode_cursor(last.last_message_at or last.created_at, last.id)
        return Page(page, next_cursor)

    async def search_views(self, query: ConversationQuery) -> Page[ConversationView]:
        page = await self.search(query)
        return Page([ConversationView.of(c) for c in page.items], page.next_cursor)


class _Messages(MessageRepository):
    def __init__(self, table: _Table[Message]) -> None:
        self.t = table

    async def get(self, message_id: str) -> Message | None:
        return self.t.get(message_id)

    async def get_by_wa_id(self, session_id: str, wa_id: str) -> Message | None:
        return self.t.first(lambda m: m.session_id == session_id and m.wa_id == wa_id)

    async def save(self, message: Message) -> None:
        self.t.put(message.id, message)

    async def get_many(self, message_ids: Sequence[str]) -> list[Message]:
        found = (self.t.get(i) for i in dict.fromkeys(message_ids))
        return [m for m in found if m is not None]

    async def save_many(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.t.put(message.id, message)

    async def existing_wa_ids(self, session_id: str, wa_ids: Sequence[str]) -> set[str]:
        wanted = set(wa_ids)
        return {
            m.wa_id
            for m in self.t.raw()
            if m.session_id == session_id and m.wa_id is not None and m.wa_id in wanted
        }

    async def existing_wa_ids_of_sessions(
        self, session_ids: Sequence[str], wa_ids: Sequence[str]
    ) -> set[tuple[str, str]]:
        sessions, wanted = set(session_ids), set(wa_ids)
        return {
            (m.session_id, m.wa_id)
            for m in self.t.raw()
            if m.session_id in sessions and m.wa_id is not None and m.wa_id in wanted
        }

    async def add_new(self, messages: Sequence[Message]) -> list[Message]:
        inserted: list[Message] = []
        wanted: dict[str, list[str]] = {}
        for message in messages:
            if message.wa_id is not None:
                wanted.setdefault(message.session_id, []).append(message.wa_id)
        # One look-up per session, as the SQL version does in one statement.
        seen = {sid: await self.existing_wa_ids(sid, ids) for sid, ids in wanted.items()}
        for message in messages:
            if message.wa_id is not None:
                if message.wa_id in seen[message.session_id]:
                    continue
                seen[message.session_id].add(message.wa_id)
            self.t.put(message.id, message)
            inserted.append(message)
        return inserted

    async def list_for_conversation(
        self, conversation_id: str, *, before: str | None = None, limit: int = 50
    ) -> Page[Message]:
        found = self.t.where(lambda m: m.conversation_id == conversation_id)

        def key(m: Message) -> tuple[datetime, str]:
            return (_naive(m.timestamp), m.id)

        found.sort(key=key)
        if before:
            at, bid = decode_cursor(before)
            bound = (_naive(at) if at else _EPOCH, bid)
            found = [m for m in found if key(m) < bound]
        page = found[-limit:] if limit else []
        more = len(found) > len(page)
        next_cursor = encode_cursor(page[0].timestamp, page[0].id) if more and page else None
        return Page(page, next_cursor)


class _Outbox(OutboxRepository):
    def __init__(self, table: _Table[OutboxEntry], attempts: _Table[SendAttempt]) -> None:
        self.t = table
        self.attempts = attempts

    async def add(self, entry: OutboxEntry) -> None:
        self.t.put(entry.id, entry)

    async def save(self, entry: OutboxEntry) -> None:
        self.t.put(entry.id, entry)

    async def save_many(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            self.t.put(entry.id, entry)

    async def get_for_message(self, message_id: str) -> OutboxEntry | None:
        return self.t.first(lambda e: e.message_id == message_id)

    async def get_many(self, entry_ids: Sequence[str]) -> list[OutboxEntry]:
        found = (self.t.get(i) for i in dict.fromkeys(entry_ids))
        return [e for e in found if e is not None]

    async def fronts(self, session_id: str, *, limit: int) -> list[OutboxEntry]:
        pending = self.t.where(
            lambda e: e.state is OutboxState.PENDING and e.session_id == session_id
        )
        pending.sort(key=lambda e: (_naive(e.created_at), e.id))
        return pending[:limit]

    async def due(self, now: datetime, *, limit: int = 100) -> list[OutboxEntry]:
        found = [
            e
            for e in self.t.values()
            if e.state is OutboxState.PENDING and e.next_attempt_at <= now
        ]
        found.sort(key=lambda e: (e.next_attempt_at, e.id))
        return found[:limit]

    async def heads(self, session_id: str | None = None) -> list[OutboxEntry]:
        firsts: dict[str, OutboxEntry] = {}
        for e in self.t.values():
            if e.state is not OutboxState.PENDING or session_id not in (None, e.session_id):
                continue
            first = firsts.get(e.session_id)
            if first is None or (_naive(e.created_at), e.id) < (_naive(first.created_at), first.id):
                firsts[e.session_id] = e
        return sorted(firsts.values(), key=lambda e: (_naive(e.next_attempt_at), e.id))

    async def pending_count(
        self, session_id: str | None = None, *, limit: int | None = None
    ) -> int:
        count = sum(
            1
            for e in self.t.values()
            if e.state is OutboxState.PENDING and session_id in (None, e.session_id)
        )
        return count if limit is None else min(count, limit)

    async def next_due_at(self) -> datetime | None:
        pending = [e.next_attempt_at for e in self.t.values() if e.state is OutboxState.PENDING]
        return min(pending, default=None)

    async def add_attempt(self, attempt: SendAttempt) -> None:
        self.attempts.put(attempt.id, attempt)

    async def add_attempts(self, attempts: Sequence[SendAttempt]) -> None:
        for attempt in attempts:
            self.attempts.put(attempt.id, attempt)

    async def attempts_for_message(self, message_id: str) -> list[SendAttempt]:
        found = [a for a in self.attempts.values() if a.message_id == message_id]
        return sorted(found, key=lambda a: (a.attempt, a.id))


class _Webhooks(WebhookRepository):
    def __init__(
        self,
        table: _Table[Webhook],
        deliveries: _Table[WebhookDelivery],
        attempts: _Table[DeliveryAttempt],
    ) -> None:
        self.t = table
        self.d = deliveries
        self.a = attempts

    async def add(self, webhook: Webhook) -> None:
        self.t.put(webhook.id, webhook)

    async def save(self, webhook: Webhook) -> None:
        self.t.put(webhook.id, webhook)

    async def get(self, webhook_id: str) -> Webhook | None:
        return self.t.get(webhook_id)

    def drop(self, webhook_id: str) -> None:
        self.t.delete(webhook_id)
        gone = {d.id for d in self.d.raw() if d.webhook_id == webhook_id}
        for delivery_id in gone:
            self.d.delete(delivery_id)
        for attempt_id in [a.id for a in self.a.raw() if a.delivery_id in gone]:
            self.a.delete(attempt_id)

    async def clear(self, webhook_id: str, limit: int) -> int:
        deliveries = [d.id for d in self.d.values() if d.webhook_id == webhook_id]
        wanted = set(deliveries)
        attempts = [a.id for a in self.a.values() if a.delivery_id in wanted]
        # Attempts first: a delivery goes only in a step that took its last attempts.
        gone = [(self.a, i) for i in attempts] + [(self.d, i) for i in deliveries]
        for table, row_id in gone[: max(0, limit)]:
            table.delete(row_id)
        return len(gone[: max(0, limit)])

    async def delete(self, webhook_id: str) -> None:
        self.drop(webhook_id)

    async def for_organization(self, organization_id: str) -> list[Webhook]:
        found = self.t.where(lambda w: w.organization_id == organization_id)
        return sorted(found, key=lambda w: w.id)

    async def add_delivery(self, delivery: WebhookDelivery) -> bool:
        if any(
            d.webhook_id == delivery.webhook_id and d.event_id == delivery.event_id
            for d in self.d.raw()
        ):
            return False
        self.d.put(delivery.id, delivery)
        return True

    async def save_delivery(self, delivery: WebhookDelivery) -> None:
        self.d.put(delivery.id, delivery)

    async def get_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        return self.d.get(delivery_id)

    async def deliveries(
        self,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[WebhookDelivery]:
        found = self.d.where(lambda d: d.webhook_id == webhook_id and status in (None, d.status))
        found.sort(key=lambda d: d.id, reverse=True)
        if cursor:
            _, before = decode_cursor(cursor)
            found = [d for d in found if d.id < before]
        page = found[:limit]
        more = len(found) > limit
        return Page(page, encode_cursor(None, page[-1].id) if more and page else None)

    async def due_deliveries(self, now: datetime, *, limit: int = 100) -> list[WebhookDelivery]:
        found = self.d.where(
            lambda d: (
                d.status is DeliveryStatus.PENDING
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
            )
        )
        found.sort(key=lambda d: (d.next_attempt_at or now, d.id))
        return found[:limit]

    async def next_delivery_at(self) -> datetime | None:
        pending = [
            d.next_attempt_at
            for d in self.d.raw()
            if d.status is DeliveryStatus.PENDING and d.next_attempt_at is not None
        ]
        return min(pending, default=None)

    async def add_attempt(self, attempt: DeliveryAttempt) -> None:
        self.a.put(attempt.id, attempt)

    async def attempts_for(self, delivery_id: str) -> list[DeliveryAttempt]:
        found = self.a.where(lambda a: a.delivery_id == delivery_id)
        return sorted(found, key=lambda a: (a.attempt, a.id))


class _Events(EventLog):
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self.uow = uow
        self.staged: list[DomainEvent] = []
        self.staged_cursors: dict[str, int] = {}

    def add(self, *events: DomainEvent) -> None:
        self.staged.extend(events)

    async def after(
        self,
        after_id: int,
        *,
        organization_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        found = [
            e
            for e in self.uow.store.events
            if e.id > after_id
            and organization_id in (None, e.organization_id)
            and session_id in (None, e.session_id)
        ]
        return found[:limit]

    async def last_id(self) -> int:
        return self.uow.store.events[-1].id if self.uow.store.events else 0

    async def get_cursor(self, consumer: str) -> int:
        return self.staged_cursors.get(consumer, self.uow.store.cursors.get(consumer, 0))

    async def set_cursor(self, consumer: str, event_id: int) -> None:
        self.staged_cursors[consumer] = event_id


@dataclass
class _Tables:
    organizations: _Table[Organization]
    users: _Table[User]
    api_keys: _Table[ApiKey]
    sessions: _Table[Session]
    contacts: _Table[Contact]
    conversations: _Table[Conversation]
    messages: _Table[Message]
    outbox: _Table[OutboxEntry]
    attempts: _Table[SendAttempt]
    webhooks: _Table[Webhook]
    deliveries: _Table[WebhookDelivery]
    delivery_attempts: _Table[DeliveryAttempt]

    def apply(self) -> None:
        for table in vars(self).values():
            table.apply()


class MemoryUnitOfWork(UnitOfWork):
    """A unit of work over a ``MemoryStore``. ``on_commit`` is called with the events stored
    after each commit that stored any (it wakes the event dispatcher)."""

    def __init__(self, store: MemoryStore, on_commit: CommitListener | None = None) -> None:
        self.store = store
        self.on_commit = on_commit
        self._reset()

    def _reset(self) -> None:
        s = self.store
        self.tables = _Tables(
            _Table(s.organizations),
            _Table(s.users),
            _Table(s.api_keys),
            _Table(s.sessions),
            _Table(s.contacts),
            _Table(s.conversations),
            _Table(s.messages),
            _Table(s.outbox),
            _Table(s.attempts),
            _Table(s.webhooks),
            _Table(s.deliveries),
            _Table(s.delivery_attempts),
        )
        self.deleted_sessions: set[str] = set()
        #: Events ``sessions.clear`` removed, gone at commit.
        self.cleared_events: set[int] = set()
        self.organizations = _Organizations(self.tables.organizations)
        self.users = _Users(self.tables.users)
        self.api_keys = _ApiKeys(self.tables.api_keys)
        self.sessions = _Sessions(self)
        self.contacts = _Contacts(self.tables.contacts)
        self.conversations = _Conversations(self.tables.conversations, self.tables.contacts)
        self.messages = _Messages(self.tables.messages)
        self.outbox = _Outbox(self.tables.outbox, self.tables.attempts)
        self.webhooks = _Webhooks(
            self.tables.webhooks, self.tables.deliveries, self.tables.delivery_attempts
        )
        self.events = _Events(self)

    async def __aenter__(self) -> Self:
        self._reset()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    async def begin_write(self) -> None:
        """Nothing to do: the store changes only at commit, all at once, on one thread."""

    async def commit(self) -> None:
        store = self.store
        self.tables.apply()
        if self.deleted_sessions or self.cleared_events:
            gone, cleared = self.deleted_sessions, self.cleared_events
            store.events[:] = [
                e for e in store.events if e.session_id not in gone and e.id not in cleared
            ]
        next_id = store.last_event_id + 1
        stored = [
            StoredEvent(
                id=next_id + offset,
                name=event.name,
                organization_id=event.organization_id,
                session_id=event.session_id,
                occurred_at=event.occurred_at,
                data=event.payload(),
                assignee_id=event.assignee_id,
            )
            for offset, event in enumerate(self.events.staged)
        ]
        store.events.extend(stored)
        store.last_event_id += len(stored)
        store.cursors.update(self.events.staged_cursors)
        store.commits += 1
        self._reset()
        if stored and self.on_commit is not None:
            self.on_commit(stored)

    async def rollback(self) -> None:
        self._reset()


class _HasSession(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def session_id(self) -> str: ...


S = TypeVar("S", bound=_HasSession)


def _delete_where(table: _Table[S], session_id: str, limit: int | None = None) -> int:
    """Delete the session's rows of ``table`` (at most ``limit``); how many."""
    ids = [item.id for item in table.values() if item.session_id == session_id]
    for item_id in ids[:limit]:
        table.delete(item_id)
    return len(ids[:limit])


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)
