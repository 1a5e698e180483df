"""The repositories on SQL: Core statements on the unit of work's connection.

Writes are upserts by id (``INSERT … ON CONFLICT (id) DO UPDATE``), so ``add`` and ``save``
behave as in the memory adapter; lists go in one executemany. ``MessageRepository.add_new`` is
one ``INSERT … ON CONFLICT (session_id, wa_id) DO NOTHING RETURNING id``: the database, not a
read before the write, decides what is new, which stays true under concurrent ingest.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Result,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from whatsgate.adapters.sql import mapping, tables
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
    ContactRepository,
    ConversationQuery,
    ConversationRepository,
    EventLog,
    MessageRepository,
    OrganizationRepository,
    OutboxRepository,
    Page,
    SessionRepository,
    UserRepository,
    WebhookRepository,
)

if TYPE_CHECKING:
    from whatsgate.adapters.sql.uow import SqlUnitOfWork

#: The key PostgreSQL's advisory lock takes while event ids are assigned and committed.
EVENT_LOG_LOCK = 0x77_68_61_74_73_67_61_74  # "whatsgat"

#: At most this many values in one ``IN (…)`` of a batched look-up: two such lists and the
#: session id stay under SQLite's oldest limit of 999 variables per statement.
IN_CHUNK = 400


def _chunks(values: Sequence[Jid]) -> list[list[Jid]]:
    """The distinct values, in lists of at most ``IN_CHUNK``."""
    distinct = list(dict.fromkeys(values))
    return [distinct[i : i + IN_CHUNK] for i in range(0, len(distinct), IN_CHUNK)]


@functools.cache
def _upsert_statement(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT … ON CONFLICT (id) DO UPDATE`` of every column, built once per table and
    dialect: building it (and its cache key) on every write cost more CPU than the write
    (bench/outbox.py, bench/rest.py)."""
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={c.name: stmt.excluded[c.name] for c in table.c if not c.primary_key},
    )


class _Repository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    @property
    def _conn(self) -> AsyncConnection:
        return self._uow.connection

    @property
    def _dialect(self) -> str:
        return self._conn.dialect.name

    async def _execute(
        self, statement: Executable, rows: Sequence[dict[str, Any]] | None = None
    ) -> Result[Any]:
        if statement.is_dml:
            await self._uow.before_write()
        try:
            if rows is None:
                return await self._conn.execute(statement)
            return await self._conn.execute(statement, list(rows))
        except IntegrityError as exc:
            raise AlreadyExists(str(exc.orig)) from exc

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _upsert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the rows, replacing those whose id is stored already; one statement. An id
        given twice keeps its last values (one statement may not touch a row twice)."""
        if not rows:
            return
        if len(rows) > 1:
            rows = list({row["id"]: row for row in rows}.values())
        await self._execute(_upsert_statement(table, self._dialect), rows)

    async def _first(self, stmt: Select[Any]) -> Any:
        return (await self._execute(stmt.limit(1))).first()

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        return list((await self._execute(stmt)).all())

    def _fold(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """Case-folded text of ``column`` (for every script, not just ASCII)."""
        text = type_coerce(column, String)
        if self._dialect == "sqlite":
            return func.wg_casefold(text)
        return func.lower(text)

    def _contains(self, column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        escaped = needle.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._fold(column).like(f"%{escaped}%", escape="\\")


class SqlOrganizations(_Repository, OrganizationRepository):
    t = tables.organizations

    async def add(self, organization: Organization) -> None:
        await self._upsert(self.t, [mapping.organization_row(organization)])

    async def get(self, organization_id: str) -> Organization | None:
        row = await self._first(select(self.t).where(self.t.c.id == organization_id))
        return mapping.to_organization(row) if row else None

    async def get_by_name(self, name: str) -> Organization | None:
        stmt = select(self.t).where(self.t.c.name == name).order_by(self.t.c.id)
        row = await self._first(stmt)
        return mapping.to_organization(row) if row else None

    async def all(self) -> list[Organization]:
        rows = await self._all(select(self.t).order_by(self.t.c.id))
        return [mapping.to_organization(r) for r in rows]


class SqlUsers(_Repository, UserRepository):
    t = tables.users

    async def add(self, user: User) -> None:
        await self._upsert(self.t, [mapping.user_row(user)])

    async def save(self, user: User) -> None:
        await self._upsert(self.t, [mapping.user_row(user)])

    async def get(self, user_id: str) -> User | None:
        row = await self._first(select(self.t).where(self.t.c.id == user_id))
        return mapping.to_user(row) if row else None

    async def in_organization(self, organization_id: str) -> list[User]:
        stmt = select(self.t).where(self.t.c.organization_id == organization_id)
        rows = await self._all(stmt.order_by(self.t.c.id))
        return [mapping.to_user(r) for r in rows]


class SqlApiKeys(_Repository, ApiKeyRepository):
    t = tables.api_keys

    async def add(self, key: ApiKey) -> None:
        await self._upsert(self.t, [mapping.api_key_row(key)])

    async def save(self, key: ApiKey) -> None:
        await self._upsert(self.t, [mapping.api_key_row(key)])

    async def get_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._first(select(self.t).where(self.t.c.key_hash == key_hash))
        return mapping.to_api_key(row) if row else None

    async def for_user(self, user_id: str) -> list[ApiKey]:
        stmt = select(self.t).where(self.t.c.user_id == user_id).order_by(self.t.c.id)
        return [mapping.to_api_key(r) for r in await self._all(stmt)]


class SqlSessions(_Repository, SessionRepository):
    t = tables.sessions

    async def add(self, session: Session) -> None:
        await self._upsert(self.t, [mapping.session_row(session)])

    async def save(self, session: Session) -> None:
        await self._upsert(self.t, [mapping.session_row(session)])

    async def get(self, session_id: str) -> Session | None:
        row = await self._first(select(self.t).where(self.t.c.id == session_id))
        return mapping.to_session(row) if row else None

    async def all(self, organization_id: str | None = None) -> list[Session]:
        stmt = select(self.t).order_by(self.t.c.id)
        if organization_id is not None:
            stmt = stmt.where(self.t.c.organization_id == organization_id)
        return [mapping.to_session(r) for r in await self._all(stmt)]

    async def list_desired_running(self) -> list[Session]:
        stmt = select(self.t).where(self.t.c.desired_running.is_(True)).order_by(self.t.c.id)
        return [mapping.to_session(r) for r in await self._all(stmt)]

    async def count_by_status(self) -> dict[str, int]:
        stmt = select(self.t.c.status, func.count()).group_by(self.t.c.status)
        return {str(status): int(count) for status, count in await self._all(stmt)}

    async def delete(self, session_id: str) -> None:
        # Explicit deletes rather than trusting every connection to enforce foreign keys;
        # the session's own row last (its cascade takes webhooks and leases).
        for table in (
            tables.send_attempts,
            tables.outbox,
            tables.messages,
            tables.conversations,
            tables.contacts,
            tables.events,
        ):
            await self._execute(delete(table).where(table.c.session_id == session_id))
        await self._execute(delete(self.t).where(self.t.c.id == session_id))


class SqlContacts(_Repository, ContactRepository):
    t = tables.contacts

    async def get_by_jid(self, session_id: str, jid: Jid) -> Contact | None:
        c = self.t.c
        stmt = select(self.t).where(c.session_id == session_id, or_(c.jid == jid, c.lid == jid))
        row = await self._first(stmt.order_by(c.id))
        return mapping.to_contact(row) if row else None

    async def get_many(self, session_id: str, jids: Sequence[Jid]) -> list[Contact]:
        c = self.t.c
        rows: dict[str, Any] = {}
        for keys in _chunks(jids):
            stmt = select(self.t).where(
                c.session_id == session_id, or_(c.jid.in_(keys), c.lid.in_(keys))
            )
            rows.update((row.id, row) for row in await self._all(stmt))
        return [mapping.to_contact(rows[key]) for key in sorted(rows)]

    async def save(self, contact: Contact) -> None:
        await self._upsert(self.t, [mapping.contact_row(contact)])

    async def save_many(self, contacts: Sequence[Contact]) -> None:
        await self._upsert(self.t, [mapping.contact_row(c) for c in contacts])

    async def search(
        self,
        session_id: str,
        *,
        text: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Contact]:
        c = self.t.c
        stmt = select(self.t).where(c.session_id == session_id)
        if text:
            columns = (c.name, c.push_name, c.business_name, c.jid)
            stmt = stmt.where(or_(*(self._contains(col, text) for col in columns)))
        if cursor:
            _, after = decode_cursor(cursor)
            stmt = stmt.where(c.id > after)
        rows = await self._all(stmt.order_by(c.id).limit(limit + 1))
        page = [mapping.to_contact(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(page, encode_cursor(None, page[-1].id) if more and page else None)


class SqlConversations(_Repository, ConversationRepository):
    t = tables.conversations

    async def get(self, conversation_id: str) -> Conversation | None:
        row = await self._first(select(self.t).where(self.t.c.id == conversation_id))
        return mapping.to_conversation(row) if row else None

    async def get_by_chat(self, session_id: str, chat: Jid) -> Conversation | None:
        c = self.t.c
        row = await self._first(select(self.t).where(c.session_id == session_id, c.chat == chat))
        return mapping.to_conversation(row) if row else None

    async def get_many_by_chat(self, session_id: str, chats: Sequence[Jid]) -> list[Conversation]:
        c = self.t.c
        rows: dict[str, Any] = {}
        for keys in _chunks(chats):
            stmt = select(self.t).where(c.session_id == session_id, c.chat.in_(keys))
            rows.update((row.id, row) for row in await self._all(stmt))
        return [mapping.to_conversation(rows[key]) for key in sorted(rows)]

    async def save(self, conversation: Conversation) -> None:
        await self._upsert(self.t, [mapping.conversation_row(conversation)])

    async def save_many(self, conversations: Sequence[Conversation]) -> None:
        await self._upsert(self.t, [mapping.conversation_row(c) for c in conversations])

    async def search(self, query: ConversationQuery) -> Page[Conversation]:
        c = self.t.c
        where: list[ColumnElement[bool]] = [c.session_id == query.session_id]
        if query.status is not None:
            where.append(c.status == str(query.status))
        if query.assignee_id is not None:
            where.append(c.assignee_id == query.assignee_id)
        if query.unread_only:
            where.append(c.unread_count > 0)
        if query.text:
            k = tables.contacts.c
            named_contact = (
                select(k.id)
                .where(
                    k.session_id == c.session_id,
                    or_(k.jid == c.chat, k.lid == c.chat),
                    or_(
                        self._contains(k.name, query.text), self._contains(k.push_name, query.text)
                    ),
                )
                .exists()
            )
            where.append(
                or_(
                    self._contains(c.name, query.text),
                    self._contains(c.chat, query.text),
                    named_contact,
                )
            )
        if query.cursor:
            at, after = decode_cursor(query.cursor)
            if at is None:
                where.append(false())
            else:
                where.append(or_(c.activity_at < at, and_(c.activity_at == at, c.id < after)))
        stmt = (
            select(self.t)
            .where(*where)
            .order_by(c.activity_at.desc(), c.id.desc())
            .limit(query.limit + 1)
        )
        rows = await self._all(stmt)
        page = [mapping.to_conversation(r) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit and page:
            last = page[-1]
            next_cursor = encode_cursor(last.last_message_at or last.created_at, last.id)
        return Page(page, next_cursor)


class SqlMessages(_Repository, MessageRepository):
    t = tables.messages

    async def get(self, message_id: str) -> Message | None:
        row = await self._first(select(self.t).where(self.t.c.id == message_id))
        return mapping.to_message(row) if row else None

    async def get_by_wa_id(self, session_id: str, wa_id: str) -> Message | None:
        c = self.t.c
        row = await self._first(select(self.t).where(c.session_id == session_id, c.wa_id == wa_id))
        return mapping.to_message(row) if row else None

    async def save(self, message: Message) -> None:
        await self._upsert(self.t, [mapping.message_row(message)])

    async def get_many(self, message_ids: Sequence[str]) -> list[Message]:
        rows = []
        for ids in _id_chunks(message_ids):
            rows += await self._all(select(self.t).where(self.t.c.id.in_(ids)))
        return [mapping.to_message(r) for r in rows]

    async def save_many(self, messages: Sequence[Message]) -> None:
        await self._upsert(self.t, [mapping.message_row(m) for m in messages])

    async def add_new(self, messages: Sequence[Message]) -> list[Message]:
        if not messages:
            return []
        stmt = (
            self._insert(self.t)
            .on_conflict_do_nothing(index_elements=[self.t.c.session_id, self.t.c.wa_id])
            .returning(self.t.c.id)
        )
        result = await self._execute(stmt, [mapping.message_row(m) for m in messages])
        inserted = set(result.scalars().all())
        return [m for m in messages if m.id in inserted]

    async def existing_wa_ids(self, session_id: str, wa_ids: Sequence[str]) -> set[str]:
        if not wa_ids:
            return set()
        c = self.t.c
        stmt = select(c.wa_id).where(c.session_id == session_id, c.wa_id.in_(set(wa_ids)))
        return {wa_id for (wa_id,) in await self._all(stmt)}

    async def list_for_conversation(
        self, conversation_id: str, *, before: str | None = None, limit: int = 50
    ) -> Page[Message]:
        if limit <= 0:
            return Page([], None)
        c = self.t.c
        stmt = select(self.t).where(c.conversation_id == conversation_id)
        if before:
            at, bid = decode_cursor(before)
            if at is None:
                stmt = stmt.where(false())
            else:
                stmt = stmt.where(or_(c.timestamp < at, and_(c.timestamp == at, c.id < bid)))
        stmt = stmt.order_by(c.timestamp.desc(), c.id.desc()).limit(limit + 1)
        rows = await self._all(stmt)
        page = [mapping.to_message(r) for r in reversed(rows[:limit])]
        more = len(rows) > limit
        next_cursor = encode_cursor(page[0].timestamp, page[0].id) if more and page else None
        return Page(page, next_cursor)


class SqlOutbox(_Repository, OutboxRepository):
    t = tables.outbox
    attempts = tables.send_attempts

    async def add(self, entry: OutboxEntry) -> None:
        await self._upsert(self.t, [mapping.outbox_row(entry)])

    async def save(self, entry: OutboxEntry) -> None:
        await self._upsert(self.t, [mapping.outbox_row(entry)])

    async def save_many(self, entries: Sequence[OutboxEntry]) -> None:
        await self._upsert(self.t, [mapping.outbox_row(e) for e in entries])

    async def get_for_message(self, message_id: str) -> OutboxEntry | None:
        stmt = select(self.t).where(self.t.c.message_id == message_id).order_by(self.t.c.id)
        row = await self._first(stmt)
        return mapping.to_outbox(row) if row else None

    async def get_many(self, entry_ids: Sequence[str]) -> list[OutboxEntry]:
        rows = []
        for ids in _id_chunks(entry_ids):
            rows += await self._all(select(self.t).where(self.t.c.id.in_(ids)))
        return [mapping.to_outbox(r) for r in rows]

    async def due(self, now: datetime, *, limit: int = 100) -> list[OutboxEntry]:
        c = self.t.c
        stmt = (
            select(self.t)
            .where(c.state == str(OutboxState.PENDING), c.next_attempt_at <= now)
            .order_by(c.next_attempt_at, c.id)
            .limit(limit)
            # PostgreSQL: the rows stay claimed by this unit of work until it ends, and other
            # workers pass over them. SQLite has one writer at a time and renders nothing.
            .with_for_update(skip_locked=True)
        )
        return [mapping.to_outbox(r) for r in await self._all(stmt)]

    async def fronts(self, session_id: str, *, limit: int) -> list[OutboxEntry]:
        params = {"session_id": session_id, "limit": limit}
        rows = (await self._conn.execute(_fronts_statement(), params)).all()
        return [mapping.to_outbox(r) for r in rows]

    async def heads(self, session_id: str | None = None) -> list[OutboxEntry]:
        stmt = _heads_statement(one_session=session_id is not None)
        rows = (await self._conn.execute(stmt, {"session_id": session_id})).all()
        return [mapping.to_outbox(r) for r in rows]

    async def pending_count(self, session_id: str | None = None) -> int:
        c = self.t.c
        stmt = select(func.count()).select_from(self.t).where(c.state == str(OutboxState.PENDING))
        if session_id is not None:
            stmt = stmt.where(c.session_id == session_id)
        return int((await self._execute(stmt)).scalar_one())

    async def next_due_at(self) -> datetime | None:
        c = self.t.c
        stmt = select(func.min(c.next_attempt_at)).where(c.state == str(OutboxState.PENDING))
        value: datetime | None = (await self._execute(stmt)).scalar_one()
        return value

    async def add_attempt(self, attempt: SendAttempt) -> None:
        await self._upsert(self.attempts, [mapping.attempt_row(attempt)])

    async def add_attempts(self, attempts: Sequence[SendAttempt]) -> None:
        await self._upsert(self.attempts, [mapping.attempt_row(a) for a in attempts])

    async def attempts_for_message(self, message_id: str) -> list[SendAttempt]:
        c = self.attempts.c
        stmt = select(self.attempts).where(c.message_id == message_id).order_by(c.attempt, c.id)
        return [mapping.to_attempt(r) for r in await self._all(stmt)]


def _id_chunks(ids: Sequence[str]) -> list[list[str]]:
    """The distinct ids, in lists of at most ``IN_CHUNK``."""
    distinct = list(dict.fromkeys(ids))
    return [distinct[i : i + IN_CHUNK] for i in range(0, len(distinct), IN_CHUNK)]


@functools.cache
def _fronts_statement() -> Select[Any]:
    """A session's first pending entries in send order, built once: the outbox worker runs it
    for every batch it sends. PostgreSQL skips rows another worker holds (SKIP LOCKED)."""
    c = tables.outbox.c
    return (
        select(tables.outbox)
        .where(c.state == str(OutboxState.PENDING), c.session_id == bindparam("session_id"))
        .order_by(c.created_at, c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )


@functools.cache
def _heads_statement(*, one_session: bool) -> Select[Any]:
    """The first pending entry of every session (or of one), built once (building it cost
    more CPU than running it). The sessions with pending entries, then each one's first entry
    by its own look-up on the (state, session_id, created_at, id) index: no window over every
    pending row, which a queue piling up for an offline session made slower on every wake."""
    t = tables.outbox
    c = t.c
    pending = str(OutboxState.PENDING)
    sessions = select(c.session_id).where(c.state == pending).distinct()
    if one_session:
        sessions = sessions.where(c.session_id == bindparam("session_id"))
    with_pending = sessions.subquery("with_pending")
    p = t.alias("first_pending")
    first = (
        select(p.c.id)
        .where(p.c.state == pending, p.c.session_id == with_pending.c.session_id)
        .order_by(p.c.created_at, p.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(t).select_from(with_pending).join(t, c.id == first).order_by(c.next_attempt_at, c.id)
    )


class SqlEventLog(_Repository, EventLog):
    t = tables.events
    cursors = tables.event_cursors

    def __init__(self, uow: SqlUnitOfWork) -> None:
        super().__init__(uow)
        self.staged: list[DomainEvent] = []

    def add(self, *events: DomainEvent) -> None:
        self.staged.extend(events)

    async def write_staged(self) -> bool:
        """Insert the staged events in one executemany; True if there were any.

        On PostgreSQL an advisory lock held to the end of the transaction makes ids become
        visible in the order they are assigned, so a reader of ``after(id)`` never skips an
        event that a slower transaction commits later with a smaller id.
        """
        if not self.staged:
            return False
        rows = [
            {
                "name": e.name,
                "organization_id": e.organization_id,
                "session_id": e.session_id,
                "occurred_at": e.occurred_at,
                "data": e.payload(),
                "assignee_id": e.assignee_id,
            }
            for e in self.staged
        ]
        if self._dialect == "postgresql":
            await self._execute(select(func.pg_advisory_xact_lock(EVENT_LOG_LOCK)))
        await self._execute(self.t.insert(), rows)
        self.staged.clear()
        return True

    async def after(
        self,
        after_id: int,
        *,
        organization_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        c = self.t.c
        stmt = select(self.t).where(c.id > after_id)
        if organization_id is not None:
            stmt = stmt.where(c.organization_id == organization_id)
        if session_id is not None:
            stmt = stmt.where(c.session_id == session_id)
        rows = await self._all(stmt.order_by(c.id).limit(limit))
        return [mapping.to_stored_event(r) for r in rows]

    async def last_id(self) -> int:
        value = (await self._execute(select(func.max(self.t.c.id)))).scalar_one()
        return int(value or 0)

    async def get_cursor(self, consumer: str) -> int:
        c = self.cursors.c
        stmt = select(c.event_id).where(c.consumer == consumer)
        value = (await self._execute(stmt)).scalar_one_or_none()
        return int(value or 0)

    async def set_cursor(self, consumer: str, event_id: int) -> None:
        stmt = _cursor_upsert_statement(self._dialect)
        await self._execute(stmt, [{"consumer": consumer, "event_id": event_id}])


@functools.cache
def _cursor_upsert_statement(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT … ON CONFLICT (consumer) DO UPDATE`` of a cursor, built once per dialect (as
    ``_upsert_statement``): every dispatcher pass and history chunk writes a cursor."""
    cursors = tables.event_cursors
    stmt = postgresql.insert(cursors) if dialect == "postgresql" else sqlite.insert(cursors)
    return stmt.on_conflict_do_update(
        index_elements=[cursors.c.consumer], set_={"event_id": stmt.excluded.event_id}
    )


class SqlWebhooks(_Repository, WebhookRepository):
    t = tables.webhooks
    d = tables.webhook_deliveries
    a = tables.webhook_attempts

    async def add(self, webhook: Webhook) -> None:
        await self._upsert(self.t, [mapping.webhook_row(webhook)])

    async def save(self, webhook: Webhook) -> None:
        await self._upsert(self.t, [mapping.webhook_row(webhook)])

    async def get(self, webhook_id: str) -> Webhook | None:
        row = await self._first(select(self.t).where(self.t.c.id == webhook_id))
        return mapping.to_webhook(row) if row else None

    async def delete(self, webhook_id: str) -> None:
        # Children first: SQLite cascades only with foreign keys on; be explicit either way.
        deliveries = select(self.d.c.id).where(self.d.c.webhook_id == webhook_id)
        await self._execute(delete(self.a).where(self.a.c.delivery_id.in_(deliveries)))
        await self._execute(delete(self.d).where(self.d.c.webhook_id == webhook_id))
        await self._execute(delete(self.t).where(self.t.c.id == webhook_id))

    async def for_organization(self, organization_id: str) -> list[Webhook]:
        c = self.t.c
        stmt = select(self.t).where(c.organization_id == organization_id).order_by(c.id)
        return [mapping.to_webhook(r) for r in await self._all(stmt)]

    async def add_delivery(self, delivery: WebhookDelivery) -> bool:
        insert = self._insert(self.d).on_conflict_do_nothing(
            index_elements=[self.d.c.webhook_id, self.d.c.event_id]
        )
        stmt = insert.values(**mapping.delivery_row(delivery)).returning(self.d.c.id)
        return (await self._execute(stmt)).first() is not None

    async def save_delivery(self, delivery: WebhookDelivery) -> None:
        await self._upsert(self.d, [mapping.delivery_row(delivery)])

    async def get_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        row = await self._first(select(self.d).where(self.d.c.id == delivery_id))
        return mapping.to_delivery(row) if row else None

    async def deliveries(
        self,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[WebhookDelivery]:
        c = self.d.c
        stmt = select(self.d).where(c.webhook_id == webhook_id)
        if status is not None:
            stmt = stmt.where(c.status == str(status))
        if cursor:
            _, before = decode_cursor(cursor)
            stmt = stmt.where(c.id < before)
        rows = await self._all(stmt.order_by(c.id.desc()).limit(limit + 1))
        page = [mapping.to_delivery(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(page, encode_cursor(None, page[-1].id) if more and page else None)

    async def due_deliveries(self, now: datetime, *, limit: int = 100) -> list[WebhookDelivery]:
        c = self.d.c
        stmt = (
            select(self.d)
            .where(c.status == str(DeliveryStatus.PENDING), c.next_attempt_at <= now)
            .order_by(c.next_attempt_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [mapping.to_delivery(r) for r in await self._all(stmt)]

    async def next_delivery_at(self) -> datetime | None:
        c = self.d.c
        stmt = select(func.min(c.next_attempt_at)).where(c.status == str(DeliveryStatus.PENDING))
        value: datetime | None = (await self._execute(stmt)).scalar_one()
        return value

    async def add_attempt(self, attempt: DeliveryAttempt) -> None:
        await self._upsert(self.a, [mapping.webhook_attempt_row(attempt)])

    async def attempts_for(self, delivery_id: str) -> list[DeliveryAttempt]:
        c = self.a.c
        stmt = select(self.a).where(c.delivery_id == delivery_id).order_by(c.attempt, c.id)
        return [mapping.to_webhook_attempt(r) for r in await self._all(stmt)]
