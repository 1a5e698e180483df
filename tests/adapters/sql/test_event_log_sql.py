"""The event log's insert hands the driver values it prepared itself (the time as the driver
takes it, the payload's JSON text): it must store exactly the rows SQLAlchemy's Core insert
stores, give back what the log reads back, and assign ids in the order the events were
staged, page after page, on each database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import World, at, conversation, phone, seed
from whatsgate.adapters.sql import tables
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.events import (
    ConversationUpdated,
    DomainEvent,
    HistorySyncProgress,
    TypingChanged,
)

_ELSEWHERE = timezone(timedelta(hours=-3))


def _events(world: World) -> list[DomainEvent]:
    """Every shape: an assignee, payloads with non-ASCII, quotes, nesting and nulls, and
    times in UTC, aware elsewhere, naive and on a whole second."""
    chat = conversation(world, phone(3), name='Zoë "the boss" \\ 日本')
    chat.assignee_id = world.admin.id
    chat.metadata = {"crm": {"lead": 7, "tags": ["a", "ü"]}, "none": None}
    ids = {"organization_id": world.org_id, "session_id": world.session_id}
    return [
        ConversationUpdated.of(chat, at(1)),
        TypingChanged(
            **ids,
            occurred_at=at(2).astimezone(_ELSEWHERE),
            conversation_id=None,
            chat=str(phone(4)),
            sender="ação",
            state="composing",
        ),
        HistorySyncProgress(
            **ids, occurred_at=datetime(2026, 3, 4, 5, 6, 7, 1), processed=3, total=None, done=False
        ),
        HistorySyncProgress(
            **ids,
            occurred_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
            processed=4,
            total=9,
            done=True,
        ),
    ]


async def _stored(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """Every event row as the database holds it (as text, the JSON decoded: PostgreSQL's
    ``json`` keeps the text it was given), in id order, without the id."""
    t = tables.events
    kept = [c for c in t.c if c.name not in ("id", "data")]
    stmt = select(*(cast(c, Text) for c in kept), t.c.data).order_by(t.c.id)
    async with engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(stmt)).all()]


async def test_events_are_stored_as_the_core_insert_stores_them(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    events = _events(world)

    async with make() as uow:
        await uow.before_write()
        rows = [
            {
                "name": e.name,
                "organization_id": e.organization_id,
                "session_id": e.session_id,
                "occurred_at": e.occurred_at,
                "data": e.payload(),
                "assignee_id": e.assignee_id,
            }
            for e in events
        ]
        await uow.connection.execute(tables.events.insert(), rows)
        await uow.commit()
    by_core = await _stored(engine)
    async with engine.begin() as conn:
        await conn.execute(tables.events.delete())

    async with make() as uow:
        uow.events.add(*events)
        written = await uow.events.write_staged()
        await uow.commit()  # the driver too: these writes bypass SQLAlchemy on SQLite
    assert await _stored(engine) == by_core
    assert len(by_core) == len(events)

    async with make() as uow:
        read = await uow.events.after(0)
    assert written == read
    assert [e.occurred_at.tzinfo for e in written] == [UTC] * len(events)
    assert written[0].assignee_id == world.admin.id


async def test_ids_follow_the_staged_order_across_pages(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    ids = {"organization_id": world.org_id, "session_id": world.session_id}
    count = 2_345  # more than one statement's page on both databases
    events = [
        HistorySyncProgress(**ids, occurred_at=at(i % 7), processed=i, total=count, done=False)
        for i in range(count)
    ]
    async with make() as uow:
        uow.events.add(*events)
        written = await uow.events.write_staged()
        await uow.commit()
    assert [e.data["processed"] for e in written] == list(range(count))
    assert [e.id for e in written] == sorted({e.id for e in written})
    async with make() as uow:
        read = await uow.events.after(0, limit=count)
    assert read == written


async def test_a_commit_with_events_is_durable_and_leaves_nothing_armed(
    engine: AsyncEngine,
) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    events = _events(world)
    async with make() as uow:
        await uow.conversations.save_many([conversation(world, phone(7))])
        uow.events.add(*events)
        await uow.commit()
        assert not uow.connection.in_transaction()
    async with make() as uow:
        # The pooled connection is handed out again: nothing armed to commit a later write.
        await uow.conversations.save_many([conversation(world, phone(8))])
        uow.events.add(*events[:1])
        await uow.events.write_staged()
        # left without commit: rolled back
    async with make() as uow:
        assert len(await uow.events.after(0)) == len(events)
        chats = await uow.conversations.get_many_by_chat(world.session_id, [phone(7), phone(8)])
        assert [c.chat for c in chats] == [phone(7)]
