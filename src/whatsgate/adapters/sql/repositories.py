"""The repositories on SQL: Core statements on the unit of work's connection.

Writes are upserts by id (``INSERT … ON CONFLICT (id) DO UPDATE``), so ``add`` and ``save``
behave as in the memory adapter; lists go in one executemany. ``MessageRepository.add_new`` is
one ``INSERT … ON CONFLICT (session_id, wa_id) DO NOTHING RETURNING id``: the database, not a
read before the write, decides what is new, which stays true under concurrent ingest.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    Result,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from whatsgate.adapters.sql import mapping, tables, types
from whatsgate.adapters.sql.onehop import OneHopConnection
from whatsgate.adapters.sql.types import json_text
from whatsgate.domain.auth import ApiKey
from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.errors import AlreadyExists
from whatsgate.domain.events import DomainEvent, StoredEvent
from whatsgate.domain.jid import GROUP_SERVER, Jid
from whatsgate.domain.message import Message
from whatsgate.domain.organization import Organization, User
from whatsgate.domain.outbox import OutboxEntry, OutboxState, SendAttempt
from whatsgate.domain.pagination import decode_cursor, encode_cursor
from whatsgate.domain.session import Session, iso
from whatsgate.domain.webhook import DeliveryAttempt, DeliveryStatus, Webhook, WebhookDelivery
from whatsgate.ports.repositories import (
    ApiKeyRepository,
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
    UserRepository,
    WebhookRepository,
)

if TYPE_CHECKING:
    from whatsgate.adapters.sql.uow import SqlUnitOfWork

#: The key PostgreSQL's advisory lock takes while event ids are assigned and committed.
EVENT_LOG_LOCK = 0x77_68_61_74_73_67_61_74  # "whatsgat"

#: The first key of the advisory locks PostgreSQL's units of work take on the addresses of
#: the contacts they look up after ``begin_write`` (the second: ``_address_key``). The
#: two-key locks are a space of their own, apart from ``EVENT_LOG_LOCK``'s.
CONTACT_ADDRESS_LOCKS = 0x77_67_63_61  # "wgca"

#: Locks the addresses (``_address_key``) given in order, each until the transaction ends.
_LOCK_ADDRESSES = "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k"

#: At most this many values in one ``IN (…)`` of a batched look-up: two such lists and the
#: session id stay under SQLite's oldest limit of 999 variables per statement.
IN_CHUNK = 400


def _chunks(values: Sequence[Jid]) -> list[list[Jid]]:
    """The distinct values, in lists of at most ``IN_CHUNK``."""
    distinct = list(dict.fromkeys(values))
    return [distinct[i : i + IN_CHUNK] for i in range(0, len(distinct), IN_CHUNK)]


# The look-ups of a group of live messages from many sessions, built once with "expanding"
# parameters: an ``in_()`` of literal values coerces each value into a bind parameter, a
# twentieth of the ingest server's CPU for a few hundred addresses per group.


@functools.lru_cache(maxsize=256)
def _by_ids_sql(
    dialect: Dialect, table: Table, columns: tuple[str, ...], count: int, lock: bool
) -> str:
    """The text of a read of ``columns`` of ``table``'s rows with one of ``count`` ids,
    ordered by id; ``lock`` (PostgreSQL, after ``begin_write``): the rows locked for update,
    in that order."""
    q = dialect.identifier_preparer
    names = ", ".join(q.quote(name) for name in columns)
    sql = (
        f"SELECT {names} FROM {q.format_table(table)}"
        f" WHERE {q.quote('id')} IN ({_marks(dialect, 1, count)}) ORDER BY {q.quote('id')}"
    )
    return f"{sql} FOR UPDATE" if lock else sql


@functools.lru_cache(maxsize=256)
def _wa_ids_of_sessions_sql(dialect: Dialect, sessions: int, wa_ids: int) -> str:
    """The text of ``SqlMessages.existing_wa_ids_of_sessions``: the session ids, then the
    WhatsApp ids, as parameters."""
    q = dialect.identifier_preparer
    session_id, wa_id = q.quote("session_id"), q.quote("wa_id")
    return (
        f"SELECT {session_id}, {wa_id} FROM {q.format_table(tables.messages)}"
        f" WHERE {session_id} IN ({_marks(dialect, 1, sessions)})"
        f" AND {wa_id} IN ({_marks(dialect, sessions + 1, wa_ids)})"
    )


@functools.cache
def _upsert_statement(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT … ON CONFLICT (id) DO UPDATE`` of every column, built once per table and
    dialect: building it (and its cache key) on every write cost more CPU than the write
    (bench/outbox.py, bench/rest.py)."""
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={
            c.name: stmt.excluded[c.name]
            for c in table.c
            if not c.primary_key and c.name not in tables.OWNER_COLUMNS
        },
    )


@functools.cache
def _get_by_id(table: Table, *, lock: bool = False) -> Select[Any]:
    """``SELECT … WHERE id = :id LIMIT 1``, built once per table: building it per call (and
    SQLAlchemy's cache key and result metadata for a new statement) cost more CPU than the
    indexed read itself (bench/rest.py). ``lock``: ``FOR UPDATE`` (PostgreSQL's units of work
    after ``begin_write``)."""
    stmt = select(table).where(table.c.id == bindparam("id")).limit(1)
    return stmt.with_for_update() if lock else stmt


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

    async def _delete_some(self, rows: Sequence[tuple[Table, Select[Any]]], limit: int) -> int:
        """Delete up to ``limit`` rows, table by table in the order given, each table's
        those whose ids its ``SELECT`` gives; how many went."""
        removed = 0
        for table, ids in rows:
            if removed >= limit:
                break
            some = ids.limit(limit - removed).scalar_subquery()
            result = await self._execute(delete(table).where(table.c.id.in_(some)))
            removed += max(0, cast(CursorResult[Any], result).rowcount)
        return removed

    async def _first(self, stmt: Select[Any]) -> Any:
        return (await self._execute(stmt.limit(1))).first()

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        return list((await self._execute(stmt)).all())

    async def _all_with(self, stmt: Select[Any], params: dict[str, Any]) -> list[Any]:
        return list((await self._conn.execute(stmt, params)).all())

    async def _by_id(self, table: Table, row_id: str, *, lock: bool = False) -> Any:
        """The row with this id (or None), its columns processed as SQLAlchemy would;
        ``lock``: locked for update if the unit of work locks what it reads."""
        locked = lock and self._uow.locking
        return await self._first_prebuilt(_get_by_id(table, lock=locked), {"id": row_id})

    async def _first_prebuilt(self, stmt: Select[Any], params: dict[str, Any]) -> Any:
        """The first row of a statement built once (bound parameters), processed as
        SQLAlchemy would; on SQLite in one call to the driver (``_read_rows``)."""
        if self._dialect != "sqlite":
            return (await self._conn.execute(stmt, params)).first()
        rows = await _read_rows(self._conn, stmt, params)
        if not rows:
            return None
        keys, processors = _sqlite_results(stmt, self._conn.dialect)
        row = rows[0]
        values = [v if p is None else p(v) for p, v in zip(processors, row, strict=True)]
        return _Processed(dict(zip(keys, values, strict=True)))

    def _fold(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """Case-folded text of ``column`` (for every script, not just ASCII)."""
        text = type_coerce(column, String)
        if self._dialect == "sqlite":
            return func.wg_casefold(text)
        return func.lower(text)

    def _contains(self, column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        escaped = needle.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._fold(column).like(f"%{escaped}%", escape="\\")

    async def _prepared_by_ids(
        self, table: Table, columns: tuple[str, ...], ids: Sequence[str], *, lock: bool = False
    ) -> list[Any]:
        """The driver's rows of ``columns`` of ``table`` with these ids, by id (``lock``: on
        PostgreSQL, locked for update in that order)."""
        conn = self._conn
        rows: list[Any] = []
        for chunk in _id_chunks(sorted(set(ids))):
            sql = _by_ids_sql(conn.dialect, table, columns, len(chunk), lock)
            rows += await _driver_rows(conn, sql, tuple(chunk))
        return rows

    def _write_time(self) -> Callable[[datetime], Any]:
        """What the prepared writes hand the driver for a time (``mapping.*_params``)."""
        return types.as_utc if self._dialect == "postgresql" else types.sqlite_text

    def _read_time(self) -> Callable[[Any], datetime]:
        """What the reads by hand make of a time the driver returns (``mapping.*_of``)."""
        return types.postgresql_time if self._dialect == "postgresql" else types.sqlite_time

    def _readers(
        self,
    ) -> tuple[Callable[[Any], datetime], Callable[[str], Jid], Callable[[Any], dict[str, Any]]]:
        return self._read_time(), types.jid_of, types.json_object


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
        row = await self._by_id(self.t, user_id)
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
        row = await self._by_id(self.t, session_id)
        return mapping.to_session(row) if row else None

    async def get_many(self, session_ids: Sequence[str]) -> list[Session]:
        """By id, in prepared text with the driver's values converted by hand
        (``mapping.session_of``): every live group reads its sessions, and SQLAlchemy's
        per-row, per-column result processing cost more than the read."""
        if not session_ids:
            return []
        time = self._read_time()
        rows = await self._prepared_by_ids(self.t, mapping.SESSION_COLUMNS, session_ids)
        return [mapping.session_of(r, time, types.jid_of, types.json_list) for r in rows]

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

    async def clear(self, session_id: str, limit: int) -> int:
        under = (tables.webhook_attempts, tables.webhook_deliveries, *_UNDER_A_SESSION)
        return await self._delete_some([(t, _ids_under(t, session_id)) for t in under], limit)

    async def delete(self, session_id: str) -> None:
        # Explicit deletes rather than trusting every connection to enforce foreign keys;
        # the session's own row last (its cascade takes webhooks and leases).
        for table in _UNDER_A_SESSION:
            await self._execute(delete(table).where(table.c.session_id == session_id))
        await self._execute(delete(self.t).where(self.t.c.id == session_id))


def _ids_under(table: Table, session_id: str) -> Select[Any]:
    """The ids of ``table``'s rows under the session: its own, or (webhook deliveries and
    their attempts, which the session's webhooks take with them) those of its webhooks."""
    w, d = tables.webhooks, tables.webhook_deliveries
    if table is tables.webhook_attempts:
        joined = table.join(d, table.c.delivery_id == d.c.id).join(w, d.c.webhook_id == w.c.id)
        return select(table.c.id).select_from(joined).where(w.c.session_id == session_id)
    if table is d:
        joined = d.join(w, d.c.webhook_id == w.c.id)
        return select(d.c.id).select_from(joined).where(w.c.session_id == session_id)
    return select(table.c.id).where(table.c.session_id == session_id)


#: The tables under a session, in the order a delete empties them (attempts before their
#: outbox entries, messages before their conversations).
_UNDER_A_SESSION = (
    tables.send_attempts,
    tables.outbox,
    tables.messages,
    tables.conversations,
    tables.contacts,
    tables.events,
)


def _marks(dialect: Dialect, first: int, count: int) -> str:
    """``count`` placeholders in the dialect's style, numbered from ``first`` (PostgreSQL)."""
    if dialect.name == "postgresql":
        return ", ".join(f"${first + i}" for i in range(count))
    return ", ".join("?" * count)


@functools.lru_cache(maxsize=256)
def _lookup_sql(dialect: Dialect, table: Table, sessions: int, keys: int, lock: bool) -> str:
    """The text of a batched look-up of contacts (by ``jid`` or ``lid``) or conversations
    (by ``chat``) of ``sessions`` sessions among ``keys`` addresses. Its parameters: the
    session ids, then the addresses (for contacts twice on SQLite: sessions and addresses
    again). ``lock`` (PostgreSQL): the rows are locked for update, in id order
    (``SqlUnitOfWork.begin_write``).

    Contacts: ``(session AND jid) OR (session AND lid)``, each side an index search. The
    same condition written ``session AND (jid OR lid)`` made SQLite (without ``ANALYZE``
    statistics, which whatsgate does not gather) search the ``(session_id, lid)`` index by
    session alone: every look-up read all of the session's contacts (10 ms at 20,000
    contacts, against 24 µs, on the migrated schema). On SQLite the sessions are given twice,
    as parameters of their own: given once (``?1`` used twice) or as literals, SQLite takes
    the same condition out of both sides and is back to searching by session alone."""
    q = dialect.identifier_preparer
    contacts = table is tables.contacts
    names = mapping.CONTACT_COLUMNS if contacts else mapping.CONVERSATION_COLUMNS[:-1]
    in_sessions = f"{q.quote('session_id')} IN ({_marks(dialect, 1, sessions)})"
    in_keys = f"IN ({_marks(dialect, sessions + 1, keys)})"
    if contacts:
        # PostgreSQL's numbered parameters are given once and used twice.
        again = dialect.name == "postgresql"
        in_sessions_again = (
            in_sessions
            if again
            else f"{q.quote('session_id')} IN ({_marks(dialect, sessions + keys + 1, sessions)})"
        )
        in_lids = in_keys if again else f"IN ({_marks(dialect, 2 * sessions + keys + 1, keys)})"
        where = (
            f"({in_sessions} AND {q.quote('jid')} {in_keys})"
            f" OR ({in_sessions_again} AND {q.quote('lid')} {in_lids})"
        )
    else:
        where = f"{in_sessions} AND {q.quote('chat')} {in_keys}"
    columns = ", ".join(q.quote(name) for name in names)
    locked = f" ORDER BY {q.quote('id')} FOR UPDATE" if lock else ""
    return f"SELECT {columns} FROM {q.format_table(table)} WHERE {where}{locked}"


def _update_set(dialect: Dialect, names: Sequence[str]) -> str:
    """An upsert's ``SET`` list: every column but the id and the owner's
    (``tables.OWNER_COLUMNS``)."""
    q = dialect.identifier_preparer
    kept = [n for n in names if n != "id" and n not in tables.OWNER_COLUMNS]
    return ", ".join(f"{q.quote(n)} = excluded.{q.quote(n)}" for n in kept)


@functools.lru_cache(maxsize=128)
def _upsert_sql(dialect: Dialect, table: Table, names: tuple[str, ...], rows: int) -> str:
    """The text of an ``INSERT … ON CONFLICT (id) DO UPDATE`` of ``rows`` rows of ``names``
    (the ``*_COLUMNS`` of a ``mapping.*_params``): a Core upsert's compiled-cache look-up
    and per-column bind processing cost more CPU than the write (bench/rest.py's POST,
    bench/outbox.py's records)."""
    q = dialect.identifier_preparer
    width = len(names)
    values = ", ".join(f"({_marks(dialect, row * width + 1, width)})" for row in range(rows))
    columns = ", ".join(q.quote(name) for name in names)
    update = _update_set(dialect, names)
    return (
        f"INSERT INTO {q.format_table(table)} ({columns}) VALUES {values}"
        f" ON CONFLICT ({q.quote('id')}) DO UPDATE SET {update}"
    )


async def _upsert_prepared(
    repo: _Repository, table: Table, names: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Upsert rows of prepared values (``mapping.*_params``, the id first), as many per
    statement as the dialect takes; an id given twice keeps its last values (as
    ``_upsert``)."""
    if not rows:
        return
    if len(rows) > 1:
        rows = list({row[0]: row for row in rows}.values())
    conn = repo._conn
    dialect = conn.dialect
    limit = dialect.insertmanyvalues_max_parameters // len(names)
    per_statement = max(1, min(dialect.insertmanyvalues_page_size, limit))
    await repo._uow.before_write()
    for low in range(0, len(rows), per_statement):
        page = rows[low : low + per_statement]
        sql = _upsert_sql(dialect, table, names, len(page))
        await _driver_write(conn, sql, tuple(v for row in page for v in row))


class _Prepared(_Repository):
    """Batched look-ups of contacts and conversations by address (the tables ingest reads
    for every group of messages) in text built once per size, values taken from the driver
    as they are: SQLAlchemy's per-row, per-column result and bind processing and row mapping
    were a third of live ingest's CPU (bench/live_ingest.py). ``mapping``'s ``*_of`` do that
    work (their upserts, ``_upsert_prepared``, take ``*_params``), and a test holds both to
    the Core path."""

    async def _prepared_lookup(
        self, table: Table, session_ids: Sequence[str], keys: Sequence[Jid]
    ) -> list[Any]:
        """The rows (by id) of ``table`` in these sessions with one of these addresses."""
        sessions = sorted(set(session_ids))
        conn = self._conn
        dialect = conn.dialect
        twice = table is tables.contacts and dialect.name != "postgresql"
        rows: dict[str, Any] = {}
        for chunk in _chunks(keys) if sessions else ():
            texts = [str(k) for k in chunk]
            sql = _lookup_sql(dialect, table, len(sessions), len(texts), self._uow.locking)
            params = (*sessions, *texts, *sessions, *texts) if twice else (*sessions, *texts)
            rows.update((row[0], row) for row in await _driver_rows(conn, sql, params))
        return [rows[key] for key in sorted(rows)]


class SqlContacts(_Prepared, ContactRepository):
    t = tables.contacts

    async def get_by_jid(self, session_id: str, jid: Jid) -> Contact | None:
        """The batched look-up's prepared text for one address (the first by id when a jid
        and a lid match different contacts): SendMessage runs it on every send, and
        building the Core statement per call was a quarter of a send's CPU."""
        found = await self.get_many_of_sessions((session_id,), (jid,))
        return found[0] if found else None

    async def get_many(self, session_id: str, jids: Sequence[Jid]) -> list[Contact]:
        return await self.get_many_of_sessions([session_id], jids)

    async def get_many_of_sessions(
        self, session_ids: Sequence[str], jids: Sequence[Jid]
    ) -> list[Contact]:
        if self._uow.locking and session_ids and jids:
            await self._lock_addresses(session_ids, jids)
        time, jid, json_object = self._readers()
        rows = await self._prepared_lookup(self.t, session_ids, jids)
        return [mapping.contact_of(row, time, jid, json_object) for row in rows]

    async def _lock_addresses(self, session_ids: Sequence[str], jids: Sequence[Jid]) -> None:
        """PostgreSQL, after ``begin_write``: lock the addresses looked up until the unit of
        work ends, whether a contact has them or not. ``FOR UPDATE`` locks the contacts
        found; an address with none yet has no row to lock, and two units of work that
        both did not find it would each create a contact for it (a send and a contact
        sync, say; there is no unique key on addresses). The second now waits for the
        first, then finds its contact. In key order, so that two look-ups do not wait for
        each other in a circle (across look-ups they can: ``WriteConflict``)."""
        keys = sorted({_address_key(s, str(j)) for s in set(session_ids) for j in jids})
        await self._conn.exec_driver_sql(_LOCK_ADDRESSES, (CONTACT_ADDRESS_LOCKS, keys))

    async def save(self, contact: Contact) -> None:
        await self._upsert(self.t, [mapping.contact_row(contact)])

    async def save_many(self, contacts: Sequence[Contact]) -> None:
        time = self._write_time()
        rows = [mapping.contact_params(c, time) for c in contacts]
        await _upsert_prepared(self, self.t, mapping.CONTACT_COLUMNS, rows)

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


_BY_CHAT = (
    select(tables.conversations)
    .where(
        tables.conversations.c.session_id == bindparam("session_id"),
        tables.conversations.c.chat == bindparam("chat"),
    )
    .limit(1)
)
_BY_CHAT_LOCKED = _BY_CHAT.with_for_update()


class SqlConversations(_Prepared, ConversationRepository):
    t = tables.conversations

    async def get(self, conversation_id: str) -> Conversation | None:
        row = await self._by_id(self.t, conversation_id, lock=True)
        return mapping.to_conversation(row) if row else None

    async def get_by_chat(self, session_id: str, chat: Jid) -> Conversation | None:
        stmt = _BY_CHAT_LOCKED if self._uow.locking else _BY_CHAT
        row = await self._first_prebuilt(stmt, {"session_id": session_id, "chat": chat})
        return mapping.to_conversation(row) if row else None

    async def get_many_by_chat(self, session_id: str, chats: Sequence[Jid]) -> list[Conversation]:
        return await self.get_many_by_chat_of_sessions([session_id], chats)

    async def get_many_by_chat_of_sessions(
        self, session_ids: Sequence[str], chats: Sequence[Jid]
    ) -> list[Conversation]:
        time, jid, json_object = self._readers()
        rows = await self._prepared_lookup(self.t, session_ids, chats)
        return [mapping.conversation_of(row, time, jid, json_object) for row in rows]

    async def save(self, conversation: Conversation) -> None:
        await self.save_many([conversation])

    async def save_many(self, conversations: Sequence[Conversation]) -> None:
        time = self._write_time()
        rows = [mapping.conversation_params(c, time) for c in conversations]
        await _upsert_prepared(self, self.t, mapping.CONVERSATION_COLUMNS, rows)

    async def search(self, query: ConversationQuery) -> Page[Conversation]:
        stmt = _conversation_search(self._dialect, _SearchShape.of(query), False)
        rows = await self._all_with(stmt, _search_params(query))
        page = [mapping.to_conversation(r) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit and page:
            last = page[-1]
            next_cursor = encode_cursor(last.last_message_at or last.created_at, last.id)
        return Page(page, next_cursor)

    async def search_views(self, query: ConversationQuery) -> Page[ConversationView]:
        """The page straight from the rows: times and chats as stored, formatted once for
        the API, no entities (the inbox's list endpoint)."""
        stmt = _conversation_search(self._dialect, _SearchShape.of(query), True)
        rows = await _read_rows(self._conn, stmt, _search_params(query))
        page = [
            ConversationView(
                id=r[0],
                session_id=r[1],
                chat=r[2],
                is_group=r[2].endswith(_GROUP_SUFFIX),
                name=r[3],
                status=r[4],
                assignee_id=r[5],
                unread_count=r[6],
                last_message_at=_wire_time(r[7]) if r[7] is not None else None,
                last_message_preview=r[8],
                last_message_id=r[9],
                external_ref=r[10],
                metadata=_json_object(r[11]),
                created_at=_wire_time(r[12]),
                updated_at=_wire_time(r[13]),
            )
            for r in rows[: query.limit]
        ]
        next_cursor = None
        if len(rows) > query.limit and page:
            last = rows[query.limit - 1]
            next_cursor = encode_cursor(_stored_time(last[14]), last[0])
        return Page(page, next_cursor)


_GROUP_SUFFIX = "@" + GROUP_SERVER


async def _read_rows(conn: AsyncConnection, stmt: Select[Any], params: dict[str, Any]) -> Any:
    """The rows of a read whose columns need no result processing (the caller formats
    them). On SQLite, straight to the driver (``OneHopConnection.rows``: on the event loop,
    or one call to its thread).

    ``OneHopConnection`` already runs every statement in one call; what this still skips
    is SQLAlchemy's own work per statement (its greenlet hop, the autobegin of the
    connection, the compiled cache look-up, execution context and result object):
    ~60 us for the session look-up and ~55 us for the page, ~12 % of a GET …/conversations
    (bench/rest.py, measured again after OneHop; the REST hot path reads only here)."""
    driver = None
    if conn.dialect.name == "sqlite":
        driver = one_hop_driver(conn)
        if driver is None:
            raw = (await conn.get_raw_connection()).driver_connection
            driver = raw if isinstance(raw, OneHopConnection) else None
    if driver is None:
        return (await conn.execute(stmt, params)).all()
    sql, order, processors, defaults = _sqlite_compiled(stmt, conn.dialect)
    values = {**defaults, **params}
    for name, process in processors.items():
        values[name] = process(values[name])
    return await driver.rows(sql, [values[n] for n in order])


class _Processed:
    """A row read through ``_read_rows`` and processed: what ``mapping.to_*`` reads of a
    ``Row`` (its ``_mapping``)."""

    __slots__ = ("_mapping",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values


@functools.lru_cache(maxsize=256)
def _sqlite_results(
    stmt: Select[Any], dialect: Dialect
) -> tuple[tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]:
    """The column names of a statement and each one's result processor (None: as read)."""
    columns = list(stmt.selected_columns)
    processors = tuple(
        c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
    )
    return tuple(str(c.key) for c in columns), processors


@functools.lru_cache(maxsize=256)
def _sqlite_compiled(
    stmt: Select[Any], dialect: Dialect
) -> tuple[str, tuple[str, ...], dict[str, Callable[[Any], Any]], dict[str, Any]]:
    """SQL text, parameter order, bind processors and fixed values of a statement."""
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup or ())
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in order:
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    defaults = {n: b.effective_value for n, b in compiled.binds.items() if not b.required}
    return compiled.string, order, processors, defaults


def _json_object(value: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON column read without its type: its text (SQLite; PostgreSQL where the query
    casts it), or the object (asyncpg's codec)."""
    if isinstance(value, dict):
        return value
    if value == "{}":  # most rows: no metadata
        return {}
    loaded: dict[str, Any] = json.loads(value)
    return loaded


def _stored_time(value: datetime | str) -> datetime:
    """A time read without its column type: PostgreSQL gives a datetime, SQLite the naive
    UTC text it stores."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _wire_time(value: datetime | str) -> str:
    """``iso()`` of a time read without its column type. SQLite's text
    (``YYYY-MM-DD HH:MM:SS.ffffff``) is rearranged rather than parsed and formatted again;
    asyncpg's UTC datetime is formatted straight away: a quarter less time than through
    ``astimezone`` and ``iso``'s memo, which a page of new objects never hits (~0.1 ms of a
    PostgreSQL GET …/conversations)."""
    if isinstance(value, str) and len(value) == 26 and value[10] == " ":
        fraction = value[19:]
        return f"{value[:10]}T{value[11:19]}{'' if fraction == '.000000' else fraction}Z"
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value.isoformat()[:-6] + "Z"  # "+00:00"
    return iso(_stored_time(value)) or ""


@dataclass(frozen=True, slots=True)
class _SearchShape:
    """Which parts a conversation search has: one statement is built per shape (and dialect),
    values are bound at execution."""

    status: bool
    assignee: bool
    unread: bool
    text: bool
    #: None: no cursor; False: a cursor past the end; True: a cursor with a time.
    cursor: bool | None

    @classmethod
    def of(cls, query: ConversationQuery) -> _SearchShape:
        cursor: bool | None = None
        if query.cursor:
            cursor = decode_cursor(query.cursor)[0] is not None
        return cls(
            status=query.status is not None,
            assignee=query.assignee_id is not None,
            unread=query.unread_only,
            text=bool(query.text),
            cursor=cursor,
        )


def _search_params(query: ConversationQuery) -> dict[str, Any]:
    params: dict[str, Any] = {"session_id": query.session_id, "limit": query.limit + 1}
    if query.status is not None:
        params["status"] = str(query.status)
    if query.assignee_id is not None:
        params["assignee_id"] = query.assignee_id
    if query.text:
        params["pattern"] = _like_pattern(query.text)
    if query.cursor:
        at, after = decode_cursor(query.cursor)
        if at is not None:
            params.update(at=at, after=after)
    return params


def _like_pattern(needle: str) -> str:
    escaped = needle.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fold_of(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    text = type_coerce(column, String)
    return func.wg_casefold(text) if dialect == "sqlite" else func.lower(text)


@functools.cache
def _conversation_search(dialect: str, shape: _SearchShape, views: bool) -> Select[Any]:
    """The inbox query of one shape, with bound parameters (see ``_search_params``): built
    once, so a request pays neither the building nor SQLAlchemy's cache key of it."""
    t = tables.conversations
    c = t.c
    where: list[ColumnElement[bool]] = [c.session_id == bindparam("session_id")]
    if shape.status:
        where.append(c.status == bindparam("status"))
    if shape.assignee:
        where.append(c.assignee_id == bindparam("assignee_id"))
    if shape.unread:
        where.append(c.unread_count > 0)
    if shape.text:
        pattern = bindparam("pattern", type_=String)

        def contains(column: ColumnElement[Any]) -> ColumnElement[bool]:
            return _fold_of(column, dialect).like(pattern, escape="\\")

        k = tables.contacts.c
        # One EXISTS per address, each an index search; one EXISTS with (jid OR lid) read
        # all of the session's contacts for each conversation the name did not match
        # (SQLite plans it by session alone; see ``_lookup_sql``).
        named_contact = or_(
            *(
                select(k.id)
                .where(
                    k.session_id == c.session_id,
                    address == c.chat,
                    or_(contains(k.name), contains(k.push_name)),
                )
                .exists()
                for address in (k.jid, k.lid)
            )
        )
        where.append(or_(contains(c.name), contains(c.chat), named_contact))
    if shape.cursor is False:
        where.append(false())
    elif shape.cursor:
        at = bindparam("at", type_=c.activity_at.type)
        where.append(or_(c.activity_at < at, and_(c.activity_at == at, c.id < bindparam("after"))))
    columns: Sequence[Any] = [t]
    if views:
        raw = functools.partial(type_coerce, type_=String)
        postgresql = dialect == "postgresql"
        # Times and metadata as text on PostgreSQL too, shaped as SQLite stores them: asyncpg
        # built a datetime for each time, formatted again in Python (12 % of a GET there),
        # and its JSON codec decoded every row's "{}" (6 %), which ``_json_object`` takes
        # as it is.
        when = _stored_text if postgresql else raw
        columns = [
            c.id,
            c.session_id,
            raw(c.chat),
            c.name,
            c.status,
            c.assignee_id,
            c.unread_count,
            when(c.last_message_at),
            c.last_message_preview,
            c.last_message_id,
            c.external_ref,
            c.metadata.cast(Text) if postgresql else raw(c.metadata),
            when(c.created_at),
            when(c.updated_at),
            when(c.activity_at),
        ]
    return (
        select(*columns)
        .where(*where)
        .order_by(c.activity_at.desc(), c.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


def _stored_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A PostgreSQL time as SQLite stores it (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): what
    ``_wire_time`` and ``_stored_time`` take without building a datetime."""
    utc = func.timezone(literal_column("'UTC'"), column)
    return func.to_char(utc, literal_column("'YYYY-MM-DD HH24:MI:SS.US'"), type_=String)


@functools.lru_cache(maxsize=32)
def _insert_new_messages_sql(dialect: Dialect, rows: int) -> str:
    """The text of ``SqlMessages.add_new``'s statement for ``rows`` rows, in the dialect's
    placeholders (``?`` on SQLite, ``$n`` on PostgreSQL)."""
    preparer = dialect.identifier_preparer
    names = mapping.MESSAGE_COLUMNS
    width = len(names)
    if dialect.name == "postgresql":
        values = ", ".join(
            "(" + ", ".join(f"${row * width + i + 1}" for i in range(width)) + ")"
            for row in range(rows)
        )
    else:
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
    table = preparer.format_table(tables.messages)
    columns = ", ".join(preparer.quote(name) for name in names)
    conflict = ", ".join(preparer.quote(name) for name in ("session_id", "wa_id"))
    return (
        f"INSERT INTO {table} ({columns}) VALUES {values}"
        f" ON CONFLICT ({conflict}) DO NOTHING RETURNING {preparer.quote('id')}"
    )


@functools.lru_cache(maxsize=32)
def _existing_wa_ids_sql(dialect: Dialect, count: int) -> str:
    """The text of ``SqlMessages.existing_wa_ids``'s statement for ``count`` ids. On
    PostgreSQL the ids are one array parameter, joined as a table: an ``IN`` list (or
    ``= ANY``) of 500 parameters is searched linearly for each row of a sequential scan, the
    plan PostgreSQL takes for a table still young in its statistics, as a first history
    import's is (125 ms a chunk at 20,000 rows). On SQLite an ``IN`` list."""
    preparer = dialect.identifier_preparer
    wa_id = preparer.quote("wa_id")
    table = preparer.format_table(tables.messages)
    session_id = preparer.quote("session_id")
    if dialect.name == "postgresql":
        return (
            f"SELECT m.{wa_id} FROM {table} AS m"
            f" JOIN unnest($2::varchar[]) AS asked({wa_id}) ON m.{wa_id} = asked.{wa_id}"
            f" WHERE m.{session_id} = $1"
        )
    return (
        f"SELECT {wa_id} FROM {table}"
        f" WHERE {session_id} = ? AND {wa_id} IN ({', '.join('?' * count)})"
    )


class SqlMessages(_Repository, MessageRepository):
    t = tables.messages

    def _locked(self, stmt: Select[Any]) -> Select[Any]:
        return stmt.with_for_update() if self._uow.locking else stmt

    async def get(self, message_id: str) -> Message | None:
        row = await self._first(self._locked(select(self.t).where(self.t.c.id == message_id)))
        return mapping.to_message(row) if row else None

    async def get_by_wa_id(self, session_id: str, wa_id: str) -> Message | None:
        c = self.t.c
        stmt = select(self.t).where(c.session_id == session_id, c.wa_id == wa_id)
        row = await self._first(self._locked(stmt))
        return mapping.to_message(row) if row else None

    async def save(self, message: Message) -> None:
        time = self._write_time()
        values = mapping.message_params(message, time, time(message.created_at))
        await _upsert_prepared(self, self.t, mapping.MESSAGE_COLUMNS, [values])

    async def get_many(self, message_ids: Sequence[str]) -> list[Message]:
        """By id, in prepared text with the driver's values converted by hand
        (``mapping.message_of``): the outbox reads the messages of every batch it claims and
        records, and building the ``IN`` statement and SQLAlchemy's result processing were a
        fifth of its CPU (bench/outbox.py)."""
        time, jid, json_object = self._readers()
        rows = await self._prepared_by_ids(
            self.t, mapping.MESSAGE_COLUMNS, message_ids, lock=self._uow.locking
        )
        return [mapping.message_of(r, time, jid, json_object) for r in rows]

    async def save_many(self, messages: Sequence[Message]) -> None:
        time = self._write_time()
        rows = [mapping.message_params(m, time, time(m.created_at)) for m in messages]
        await _upsert_prepared(self, self.t, mapping.MESSAGE_COLUMNS, rows)

    async def add_new(self, messages: Sequence[Message]) -> list[Message]:
        """One ``INSERT … ON CONFLICT (session_id, wa_id) DO NOTHING RETURNING id`` of many
        rows per statement, its values made driver-ready by ``mapping.message_params`` and
        handed to the driver as they are: the same rows as a Core insert, without its
        per-row, per-column bind processing (half the CPU of a history import)."""
        if not messages:
            return []
        conn = self._conn
        dialect = conn.dialect
        time = self._write_time()
        width = len(mapping.MESSAGE_COLUMNS)
        per_statement = max(
            1,
            min(
                dialect.insertmanyvalues_page_size, dialect.insertmanyvalues_max_parameters // width
            ),
        )
        params = mapping.message_params
        inserted: set[str] = set()
        created: tuple[datetime | None, Any] = (None, None)
        await self._uow.before_write()
        for low in range(0, len(messages), per_statement):
            page = messages[low : low + per_statement]
            values: list[Any] = []
            for m in page:
                if m.created_at is not created[0]:
                    created = (m.created_at, time(m.created_at))
                values.extend(params(m, time, created[1]))
            sql = _insert_new_messages_sql(dialect, len(page))
            inserted.update(row[0] for row in await _driver_write(conn, sql, tuple(values)))
        return [m for m in messages if m.id in inserted]

    async def existing_wa_ids(self, session_id: str, wa_ids: Sequence[str]) -> set[str]:
        """One ``SELECT`` (on SQLite one per page of distinct ids), its text built once per
        size and sent to the driver as it is: a chunk's 500 ids made SQLAlchemy expand and
        bind-process an ``IN`` list on every call."""
        if not wa_ids:
            return set()
        conn = self._conn
        dialect = conn.dialect
        distinct = list(dict.fromkeys(wa_ids))
        if dialect.name == "postgresql":
            sql = _existing_wa_ids_sql(dialect, 0)
            return set((await conn.exec_driver_sql(sql, (session_id, distinct))).scalars())
        per_statement = max(1, dialect.insertmanyvalues_max_parameters - 1)
        found: set[str] = set()
        for low in range(0, len(distinct), per_statement):
            page = distinct[low : low + per_statement]
            sql = _existing_wa_ids_sql(dialect, len(page))
            result = await conn.exec_driver_sql(sql, (session_id, *page))
            found.update(result.scalars().all())
        return found

    async def existing_wa_ids_of_sessions(
        self, session_ids: Sequence[str], wa_ids: Sequence[str]
    ) -> set[tuple[str, str]]:
        """One ``SELECT`` per ``IN_CHUNK`` ids, in prepared text (see ``_driver_rows``)."""
        if not session_ids or not wa_ids:
            return set()
        conn = self._conn
        dialect = conn.dialect
        sessions = sorted(set(session_ids))
        distinct = sorted(set(wa_ids))
        found: set[tuple[str, str]] = set()
        for low in range(0, len(distinct), IN_CHUNK):
            chunk = distinct[low : low + IN_CHUNK]
            sql = _wa_ids_of_sessions_sql(dialect, len(sessions), len(chunk))
            rows = await _driver_rows(conn, sql, (*sessions, *chunk))
            found.update((session_id, wa_id) for session_id, wa_id in rows)
        return found

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
        await self.save_many([entry])

    async def save(self, entry: OutboxEntry) -> None:
        await self.save_many([entry])

    async def save_many(self, entries: Sequence[OutboxEntry]) -> None:
        time = self._write_time()
        rows = [mapping.outbox_params(e, time) for e in entries]
        await _upsert_prepared(self, self.t, mapping.OUTBOX_COLUMNS, rows)

    async def get_for_message(self, message_id: str) -> OutboxEntry | None:
        stmt = select(self.t).where(self.t.c.message_id == message_id).order_by(self.t.c.id)
        row = await self._first(stmt)
        return mapping.to_outbox(row) if row else None

    async def get_many(self, entry_ids: Sequence[str]) -> list[OutboxEntry]:
        """By id, as ``SqlMessages.get_many`` (``mapping.outbox_of``)."""
        time = self._read_time()
        rows = await self._prepared_by_ids(self.t, mapping.OUTBOX_COLUMNS, entry_ids)
        return [mapping.outbox_of(r, time) for r in rows]

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
        self._uow.before_locking_read()
        return [mapping.to_outbox(r) for r in await self._all(stmt)]

    async def fronts(self, session_id: str, *, limit: int) -> list[OutboxEntry]:
        params = {"session_id": session_id, "limit": limit}
        self._uow.before_locking_read()
        return await self._entries(_fronts_statement(), params)

    async def heads(self, session_id: str | None = None) -> list[OutboxEntry]:
        stmt = _heads_statement(one_session=session_id is not None)
        return await self._entries(stmt, {"session_id": session_id})

    async def _entries(self, stmt: Select[Any], params: dict[str, Any]) -> list[OutboxEntry]:
        """The entries a statement built once reads (its columns ``OUTBOX_COLUMNS``), on
        SQLite straight from the driver (``_read_rows``, ``mapping.outbox_of``): the worker
        claims with ``fronts`` for every batch and looks at ``heads`` on every wake."""
        time = self._read_time()
        return [mapping.outbox_of(r, time) for r in await _read_rows(self._conn, stmt, params)]

    async def pending_count(
        self, session_id: str | None = None, *, limit: int | None = None
    ) -> int:
        if session_id is not None and limit is not None:
            params = {"session_id": session_id, "limit": limit}
            rows = await _read_rows(self._conn, _pending_upto_statement(), params)
            return int(rows[0][0])
        c = self.t.c
        stmt = select(func.count()).select_from(self.t).where(c.state == str(OutboxState.PENDING))
        if session_id is not None:
            stmt = stmt.where(c.session_id == session_id)
        count = int((await self._execute(stmt)).scalar_one())
        return count if limit is None else min(count, limit)

    async def next_due_at(self) -> datetime | None:
        c = self.t.c
        stmt = select(func.min(c.next_attempt_at)).where(c.state == str(OutboxState.PENDING))
        value: datetime | None = (await self._execute(stmt)).scalar_one()
        return value

    async def add_attempt(self, attempt: SendAttempt) -> None:
        await self.add_attempts([attempt])

    async def add_attempts(self, attempts: Sequence[SendAttempt]) -> None:
        time = self._write_time()
        rows = [mapping.attempt_params(a, time) for a in attempts]
        await _upsert_prepared(self, self.attempts, mapping.ATTEMPT_COLUMNS, rows)

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
        select(*(c[name] for name in mapping.OUTBOX_COLUMNS))
        .where(c.state == str(OutboxState.PENDING), c.session_id == bindparam("session_id"))
        .order_by(c.created_at, c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )


@functools.cache
def _pending_upto_statement() -> Select[Any]:
    """How many entries a session has pending, counting at most ``limit`` of them, built once:
    SendMessage runs it on every send, and an unbounded count grew with the session's queue.
    The (state, session_id, created_at, id) index answers it without reading the rows."""
    c = tables.outbox.c
    upto = (
        select(c.id)
        .where(c.state == str(OutboxState.PENDING), c.session_id == bindparam("session_id"))
        .limit(bindparam("limit"))
        .subquery("upto")
    )
    return select(func.count()).select_from(upto)


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
        select(*(c[name] for name in mapping.OUTBOX_COLUMNS))
        .select_from(with_pending)
        .join(t, c.id == first)
        .order_by(c.next_attempt_at, c.id)
    )


class SqlEventLog(_Repository, EventLog):
    t = tables.events
    cursors = tables.event_cursors

    def __init__(self, uow: SqlUnitOfWork) -> None:
        super().__init__(uow)
        self.staged: list[DomainEvent] = []

    def add(self, *events: DomainEvent) -> None:
        self.staged.extend(events)

    async def write_staged(self, *, commit: bool = False) -> list[StoredEvent]:
        """Insert the staged events in one statement; returns them as stored, with the ids the
        database assigned, oldest first (the unit of work hands them to ``on_commit``).

        ``commit``: the caller commits right after (``SqlUnitOfWork.commit``). On SQLite the
        last statement commits too, in the same call to the driver (one round trip when it
        goes to the driver's thread). When no event is staged nothing is committed here.

        On PostgreSQL an advisory lock held to the end of the transaction makes ids become
        visible in the order they are assigned, so a reader of ``after(id)`` never skips an
        event that a slower transaction commits later with a smaller id.
        """
        if not self.staged:
            return []
        conn = self._conn
        dialect = conn.dialect
        postgres = dialect.name == "postgresql"
        time = types.as_utc if postgres else types.sqlite_text
        # The events of a unit of work mostly share one time (the clock's reading).
        last: tuple[datetime | None, datetime, Any] = (None, datetime.min, None)
        events: list[tuple[DomainEvent, datetime, dict[str, Any]]] = []
        values: list[tuple[Any, ...]] = []
        for e in self.staged:
            at = e.occurred_at
            if at is not last[0]:
                last = (at, _utc(at), time(at))
            data = e.payload()
            events.append((e, last[1], data))
            values.append(
                (e.name, e.organization_id, e.session_id, last[2], json_text(data), e.assignee_id)
            )
        await self._uow.before_write()
        if postgres:
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock($1)", (EVENT_LOG_LOCK,))
        per_statement = max(
            1,
            min(
                dialect.insertmanyvalues_page_size,
                dialect.insertmanyvalues_max_parameters // len(_EVENT_COLUMNS),
            ),
        )
        ids: list[int] = []
        for low in range(0, len(values), per_statement):
            page = values[low : low + per_statement]
            sql = _insert_events_sql(dialect, len(page))
            params = tuple(v for row in page for v in row)
            final = commit and low + per_statement >= len(values)
            rows = await _driver_write(conn, sql, params, commit=final)
            # RETURNING does not promise to list the rows in the order given, but one
            # multi-row INSERT takes its rows in order and the id sequence gives each a larger
            # id than the one before (on PostgreSQL under the advisory lock above, on SQLite
            # by AUTOINCREMENT): sorted, the ids returned are the rows' ids in order, and a
            # later page's ids are all larger than an earlier one's.
            ids += sorted(int(row[0]) for row in rows)
        self.staged.clear()
        return [
            StoredEvent(
                id=event_id,
                name=e.name,
                organization_id=e.organization_id,
                session_id=e.session_id,
                occurred_at=utc,
                data=data,
                assignee_id=e.assignee_id,
            )
            for event_id, (e, utc, data) in zip(ids, events, strict=True)
        ]

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


def one_hop_driver(conn: AsyncConnection) -> OneHopConnection | None:
    """The ``OneHopConnection`` under this connection (checked out already: no I/O), if any."""
    sync = conn.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None
    driver = sync.connection.driver_connection
    return driver if isinstance(driver, OneHopConnection) else None


def _address_key(session_id: str, address: str) -> int:
    """The second key of an address's advisory lock: a signed 32-bit hash of the session and
    the address (two addresses that share one only wait for each other)."""
    key = zlib.crc32(f"{session_id} {address}".encode())
    return key - (1 << 32) if key >= 1 << 31 else key


async def _driver_rows(conn: AsyncConnection, sql: str, params: tuple[Any, ...]) -> Any:
    """The rows of a prepared read (text in the dialect's placeholders, driver values), as
    the driver returns them. On SQLite straight to ``OneHopConnection`` (one call, on the
    event loop or its thread): SQLAlchemy's own work per text statement, above all the
    result metadata it builds from the cursor's description each time, was ~70 µs, a tenth
    of a small live group's CPU (bench/ingest_socketio.py)."""
    driver = one_hop_driver(conn) if conn.dialect.name == "sqlite" else None
    if driver is None:
        return await conn.exec_driver_sql(sql, params)
    return await driver.rows(sql, params)


async def _driver_write(
    conn: AsyncConnection, sql: str, params: tuple[Any, ...], *, commit: bool = False
) -> list[Any]:
    """A prepared write (text in the dialect's placeholders, driver values); its rows if it
    returns any. ``commit``: commit with it, if it succeeds (SQLite only; elsewhere the
    caller commits). On SQLite straight to ``OneHopConnection``, as ``_driver_rows``:
    SQLAlchemy's work around a text statement was a third of a one-message unit of work
    once the statement itself ran on the event loop (bench/ingest_socketio.py). The unit of
    work commits and rolls back the driver itself (SQLAlchemy does not see these writes).
    A unique key already taken raises ``AlreadyExists``; other database errors are
    SQLAlchemy's, as on the Core path."""
    driver = one_hop_driver(conn) if conn.dialect.name == "sqlite" else None
    if driver is None:
        try:
            result = await conn.exec_driver_sql(sql, params)
        except IntegrityError as exc:
            raise AlreadyExists(str(exc.orig)) from exc
        return list(result.all()) if result.returns_rows else []
    try:
        return (await driver.statement(sql, params, commit=commit))[1]
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(str(exc)) from exc
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc


#: The columns ``SqlEventLog.write_staged`` writes (``id`` is the database's).
_EVENT_COLUMNS = ("name", "organization_id", "session_id", "occurred_at", "data", "assignee_id")


@functools.lru_cache(maxsize=32)
def _insert_events_sql(dialect: Dialect, rows: int) -> str:
    """The text of the event log's ``INSERT … RETURNING id`` of ``rows`` rows of prepared
    values (name, organization, session, the time as the driver takes it, the payload's JSON
    text, assignee), in the dialect's placeholders: SQLAlchemy's insertmanyvalues and the
    per-row bind processing of the JSON and time columns were a tenth of a live group's
    commit (bench/live_ingest.py). A test holds the rows to the Core path."""
    q = dialect.identifier_preparer
    width = len(_EVENT_COLUMNS)
    values = ", ".join(f"({_marks(dialect, row * width + 1, width)})" for row in range(rows))
    columns = ", ".join(q.quote(name) for name in _EVENT_COLUMNS)
    return (
        f"INSERT INTO {q.format_table(tables.events)} ({columns}) VALUES {values}"
        f" RETURNING {q.quote('id')}"
    )


def _utc(value: datetime) -> datetime:
    """As the log gives a time back: aware, in UTC (naive means UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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

    async def clear(self, webhook_id: str, limit: int) -> int:
        d, a = self.d.c, self.a.c
        of_webhook = select(d.id).where(d.webhook_id == webhook_id)
        attempts = select(a.id).where(a.delivery_id.in_(of_webhook.scalar_subquery()))
        return await self._delete_some([(self.a, attempts), (self.d, of_webhook)], limit)

    async def delete(self, webhook_id: str) -> None:
        # Children first: SQLite cascades only with foreign keys on; be explicit either way.
        deliveries = select(self.d.c.id).where(self.d.c.webhook_id == webhook_id)
        await self._execute(delete(self.a).where(self.a.c.delivery_id.in_(deliveries)))
        await self._execute(delete(self.d).where(self.d.c.webhook_id == webhook_id))
        await self._execute(delete(self.t).where(self.t.c.id == webhook_id))

    # Built once (a bound parameter): the webhook publisher reads it for events some webhook
    # wants, and rebuilding it (with its cache key) per call cost more CPU than the read.
    _of_organization = (
        select(t).where(t.c.organization_id == bindparam("organization_id")).order_by(t.c.id)
    )

    async def for_organization(self, organization_id: str) -> list[Webhook]:
        rows = await self._all_with(self._of_organization, {"organization_id": organization_id})
        return [mapping.to_webhook(r) for r in rows]

    @staticmethod
    @functools.cache
    def _add_delivery_statement(dialect: str) -> Executable:
        """``INSERT … ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING id``, built once
        per dialect: building it per delivery cost a third of the publisher's CPU."""
        d = tables.webhook_deliveries
        insert = postgresql.insert(d) if dialect == "postgresql" else sqlite.insert(d)
        return insert.on_conflict_do_nothing(
            index_elements=[d.c.webhook_id, d.c.event_id]
        ).returning(d.c.id)

    async def add_delivery(self, delivery: WebhookDelivery) -> bool:
        stmt = self._add_delivery_statement(self._dialect)
        result = await self._execute(stmt, [mapping.delivery_row(delivery)])
        return result.first() is not None

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
        self._uow.before_locking_read()
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
