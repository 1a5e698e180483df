"""The single-row writes and the contact look-up SendMessage makes on every send
(``messages.save``, ``outbox.add``, ``conversations.save``, ``contacts.get_by_jid``), and the
outbox's records (``messages.save_many``, ``outbox.save_many``, ``outbox.add_attempts``), hand the
driver values they prepared themselves (``mapping.*_params``) in text built once: they must
store exactly the rows a Core insert of ``mapping.*_row`` stores, replace a stored row whole,
and find what a Core select finds, on each database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, Text, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import (
    at,
    contact,
    conversation,
    fields_of,
    full_contact,
    full_conversation,
    full_messages,
    full_outbox_entry,
    message,
    outbox_entry,
    phone,
    seed,
)
from whatsgate.adapters.sql import mapping, tables
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.ids import new_id
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind, MessageStatus
from whatsgate.domain.outbox import OutboxState, SendAttempt

_ELSEWHERE = timezone(timedelta(hours=-3))
_NAIVE = datetime(2026, 3, 4, 5, 6, 7, 1)
_WHOLE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


async def _stored(engine: AsyncEngine, table: Table, key: str) -> dict[str, tuple[Any, ...]]:
    """Every row as the database holds it (as text), by ``key``, without ``id`` and ``key``."""
    kept = [c for c in table.c if c.name not in ("id", key)]
    stmt = select(cast(table.c[key], Text), *(cast(c, Text).label(c.name) for c in kept))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


async def _assert_stored_as_core(
    engine: AsyncEngine, table: Table, key: str, values: list[str]
) -> None:
    """Each row stored under ``key`` = v holds what its Core twin (``v-core``) holds."""
    stored = await _stored(engine, table, key)
    assert len(stored) == 2 * len(values)
    for value in values:
        assert stored[value] == stored[f"{value}-core"], value


async def _core_insert(engine: AsyncEngine, table: Table, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(table.insert(), rows)


@pytest.mark.parametrize("many", [False, True], ids=["save", "save_many"])
async def test_message_save_stores_the_core_row_and_replaces_it(
    engine: AsyncEngine, many: bool
) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = [
        *full_messages(world, "c1"),
        message(world, "c1", "PLAIN", at(5)),
        message(world, "c1", "ELSEWHERE", at(7).astimezone(_ELSEWHERE)),
        message(world, "c1", "NAIVE", _NAIVE, sender=None, text=None, kind=MessageKind.STICKER),
        message(world, "c1", "WHOLE", _WHOLE, status=MessageStatus.QUEUED),
    ]
    twins = []
    for m in shapes:
        twin = dataclasses.replace(m, id=new_id(), wa_id=f"{m.wa_id}-core")
        twin.reactions = dict(m.reactions)
        twins.append(twin)
    await _core_insert(engine, tables.messages, [mapping.message_row(t) for t in twins])
    async with make() as uow:
        if many:  # the outbox's records
            await uow.messages.save_many(shapes)
        else:
            for m in shapes:
                await uow.messages.save(m)
        await uow.commit()

    await _assert_stored_as_core(engine, tables.messages, "wa_id", [str(m.wa_id) for m in shapes])

    # A save of a stored id replaces every column.
    first = shapes[0]
    first.status, first.status_error, first.text = MessageStatus.SENT, None, "changed"
    async with make() as uow:
        await (uow.messages.save_many([first]) if many else uow.messages.save(first))
        await uow.commit()
    async with make() as uow:
        again = await uow.messages.get(first.id)
        assert again is not None
        assert (again.status, again.status_error, again.text) == (
            MessageStatus.SENT,
            None,
            "changed",
        )
        assert len(await _stored(engine, tables.messages, "wa_id")) == 2 * len(shapes)


@pytest.mark.parametrize("many", [False, True], ids=["add", "save_many"])
async def test_outbox_add_stores_the_core_row_and_replaces_it(
    engine: AsyncEngine, many: bool
) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = [
        full_outbox_entry(world),
        outbox_entry(world, "m-plain", at(3)),
        outbox_entry(world, "m-elsewhere", at(4).astimezone(_ELSEWHERE), throttled=True),
        outbox_entry(world, "m-naive", _NAIVE, created_at=_NAIVE, updated_at=_NAIVE),
        outbox_entry(world, "m-whole", _WHOLE, state=OutboxState.DONE, attempts=2),
    ]
    twins = [dataclasses.replace(e, id=new_id(), message_id=f"{e.message_id}-core") for e in shapes]
    await _core_insert(engine, tables.outbox, [mapping.outbox_row(t) for t in twins])
    async with make() as uow:
        if many:  # the outbox's records
            await uow.outbox.save_many(shapes)
        else:
            for e in shapes:
                await uow.outbox.add(e)
        await uow.commit()

    messages = [e.message_id for e in shapes]
    await _assert_stored_as_core(engine, tables.outbox, "message_id", messages)
    async with make() as uow:
        for e, twin in zip(shapes, twins, strict=True):
            mine = await uow.outbox.get_for_message(e.message_id)
            core = await uow.outbox.get_for_message(twin.message_id)
            assert mine is not None and core is not None
            assert fields_of(mine) == {**fields_of(core), "id": e.id, "message_id": e.message_id}

    plain = shapes[1]
    plain.state, plain.attempts, plain.last_error = OutboxState.FAILED, 3, "boom"
    async with make() as uow:
        await (uow.outbox.save_many([plain]) if many else uow.outbox.add(plain))
        await uow.commit()
    async with make() as uow:
        again = await uow.outbox.get_for_message(plain.message_id)
    assert again is not None
    assert (again.id, again.state, again.attempts, again.last_error) == (
        plain.id,
        OutboxState.FAILED,
        3,
        "boom",
    )


async def test_conversation_save_stores_the_core_row(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = [
        full_conversation(world),
        conversation(world, phone(3)),
        conversation(world, phone(4), last_message_at=at(9).astimezone(_ELSEWHERE)),
        conversation(world, phone(5), created_at=_NAIVE),
        conversation(world, phone(6), last_message_at=_WHOLE),
    ]
    twins = [
        dataclasses.replace(c, id=new_id(), chat=Jid(c.chat.user + "9", c.chat.server))
        for c in shapes
    ]
    await _core_insert(engine, tables.conversations, [mapping.conversation_row(t) for t in twins])
    async with make() as uow:
        for c in shapes:
            await uow.conversations.save(c)
        await uow.commit()
    stored = await _stored(engine, tables.conversations, "chat")
    assert len(stored) == 2 * len(shapes)
    for c, twin in zip(shapes, twins, strict=True):
        assert stored[str(c.chat)] == stored[str(twin.chat)], c.chat


async def test_contact_by_jid_finds_what_the_core_select_finds(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    lid = Jid("271600000009", "lid")
    shapes = [
        full_contact(world),
        contact(world, phone(3), created_at=at(5).astimezone(_ELSEWHERE)),
        contact(world, phone(4), updated_at=_NAIVE),
        # One contact known by this lid, another whose jid is it: the first by id answers.
        contact(world, phone(5), lid=lid, created_at=_WHOLE),
        contact(world, lid),
    ]
    await _core_insert(engine, tables.contacts, [mapping.contact_row(c) for c in shapes])
    other = await seed(make, "Other")
    await _core_insert(engine, tables.contacts, [mapping.contact_row(contact(other, phone(3)))])
    c = tables.contacts.c
    wanted = [phone(2), Jid("271600000002", "lid"), phone(3), phone(4), lid, phone(7)]
    async with make() as uow:
        for jid in wanted:
            stmt = (
                select(tables.contacts)
                .where(c.session_id == world.session_id, or_(c.jid == jid, c.lid == jid))
                .order_by(c.id)
                .limit(1)
            )
            async with engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
            core = None if row is None else fields_of(mapping.to_contact(row))
            found = await uow.contacts.get_by_jid(world.session_id, jid)
            assert (None if found is None else fields_of(found)) == core, jid
            assert (core is None) == (jid == phone(7))


async def test_outbox_attempts_store_the_core_row(engine: AsyncEngine) -> None:
    """``add_attempts`` (the outbox's record of each send) stores what a Core insert of
    ``mapping.attempt_row`` stores, and reads back the same."""
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)

    def attempt(n: int, started: datetime, **fields: Any) -> SendAttempt:
        values: dict[str, Any] = {
            "organization_id": world.org_id,
            "session_id": world.session_id,
            "outbox_id": f"o-{n}",
            "message_id": f"m-{n}",
            "attempt": n,
            "started_at": started,
            "latency_ms": 3.25,
            "request_summary": "text to +5566",
            "ok": True,
        }
        values.update(fields)
        return SendAttempt(**values)

    shapes = [
        attempt(1, at(1), response="wa_id=X"),
        attempt(2, at(2).astimezone(_ELSEWHERE), ok=False, error="timeout", latency_ms=0.0),
        attempt(3, _NAIVE, response=None, error=None),
        attempt(4, _WHOLE, latency_ms=1234.5, ok=False, error="banned"),
    ]
    twins = [dataclasses.replace(a, id=new_id(), message_id=f"{a.message_id}-core") for a in shapes]
    await _core_insert(engine, tables.send_attempts, [mapping.attempt_row(t) for t in twins])
    async with make() as uow:
        await uow.outbox.add_attempts(shapes)
        await uow.commit()

    messages = [a.message_id for a in shapes]
    await _assert_stored_as_core(engine, tables.send_attempts, "message_id", messages)
    async with make() as uow:
        for a, twin in zip(shapes, twins, strict=True):
            (mine,) = await uow.outbox.attempts_for_message(a.message_id)
            (core,) = await uow.outbox.attempts_for_message(twin.message_id)
            assert fields_of(mine) == {**fields_of(core), "id": a.id, "message_id": a.message_id}
            assert type(mine.ok) is bool
