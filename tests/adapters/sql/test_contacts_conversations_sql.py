"""The batched look-ups and upserts of contacts and conversations hand the driver values they
prepared themselves and read its rows without SQLAlchemy's result processing
(``mapping.*_params``, ``mapping.*_of``): they must store exactly the rows the Core path
(``save``) stores and read back exactly what the Core reads (``get_by_jid``, ``get``), on each
database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, Text, cast, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import (
    World,
    at,
    contact,
    conversation,
    fields_of,
    full_contact,
    full_conversation,
    phone,
    seed,
)
from whatsgate.adapters.sql import tables
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.ids import new_id
from whatsgate.domain.jid import Jid

_ELSEWHERE = timezone(timedelta(hours=-3))


def _contacts(world: World) -> list[Contact]:
    """Every shape of contact: full, bare, times aware elsewhere, naive, on a whole second."""
    return [
        full_contact(world),
        contact(world, phone(3)),
        contact(world, Jid("271600000004", "lid"), created_at=at(5).astimezone(_ELSEWHERE)),
        contact(world, phone(5), updated_at=datetime(2026, 3, 4, 5, 6, 7, 1)),
        contact(world, phone(6), created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
    ]


def _conversations(world: World) -> list[Conversation]:
    return [
        full_conversation(world),
        conversation(world, phone(3)),
        conversation(world, phone(4), last_message_at=at(9).astimezone(_ELSEWHERE)),
        conversation(world, phone(5), created_at=datetime(2026, 3, 4, 5, 6, 7, 1)),
        conversation(world, phone(6), last_message_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
    ]


def _other(jid: Jid) -> Jid:
    """Another address on the same server (the twins' own, as a conversation's chat is
    unique per session)."""
    return Jid(jid.user + "9", jid.server)


async def _stored(engine: AsyncEngine, table: Table, key: str) -> dict[str, tuple[Any, ...]]:
    """Every row as the database holds it (as text), by ``key`` (as text), without the
    columns that differ by construction (id and ``key``)."""
    kept = [c for c in table.c if c.name not in ("id", key)]
    stmt = select(cast(table.c[key], Text), *(cast(c, Text).label(c.name) for c in kept))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _fields(entity: Any, *without: str) -> dict[str, Any]:
    return {k: v for k, v in fields_of(entity).items() if k not in ("id", *without)}


async def test_contacts_are_stored_and_read_as_the_core_path_does(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = _contacts(world)
    twins = [dataclasses.replace(c, id=new_id(), jid=_other(c.jid)) for c in shapes]
    async with make() as uow:
        await uow.contacts.save_many(shapes)
        for twin in twins:
            await uow.contacts.save(twin)
        await uow.commit()

    stored = await _stored(engine, tables.contacts, "jid")
    assert len(stored) == 2 * len(shapes)
    for c, twin in zip(shapes, twins, strict=True):
        assert stored[str(c.jid)] == stored[str(twin.jid)], c.jid

    async with make() as uow:
        found = await uow.contacts.get_many(world.session_id, [c.jid for c in shapes])
        assert [c.id for c in found] == sorted(c.id for c in shapes)
        for c in found:
            twin = await uow.contacts.get_by_jid(world.session_id, _other(c.jid))
            assert twin is not None
            assert _fields(c, "jid") == _fields(twin, "jid")
            core = await uow.contacts.get_by_jid(world.session_id, c.jid)
            assert fields_of(c) == fields_of(core)


async def test_conversations_are_stored_and_read_as_the_core_path_does(
    engine: AsyncEngine,
) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = _conversations(world)
    twins = [dataclasses.replace(c, id=new_id(), chat=_other(c.chat)) for c in shapes]
    async with make() as uow:
        await uow.conversations.save_many(shapes)
        for twin in twins:
            await uow.conversations.save(twin)
        await uow.commit()

    stored = await _stored(engine, tables.conversations, "chat")
    assert len(stored) == 2 * len(shapes)
    for c, twin in zip(shapes, twins, strict=True):
        assert stored[str(c.chat)] == stored[str(twin.chat)], c.chat

    async with make() as uow:
        found = await uow.conversations.get_many_by_chat(world.session_id, [c.chat for c in shapes])
        assert [c.id for c in found] == sorted(c.id for c in shapes)
        by_id = {twin.id: twin for twin in twins}
        for c, twin in zip(shapes, twins, strict=True):
            mine = next(f for f in found if f.id == c.id)
            core_twin = await uow.conversations.get(by_id[twin.id].id)
            assert core_twin is not None
            assert _fields(mine, "chat") == _fields(core_twin, "chat")
            assert fields_of(mine) == fields_of(await uow.conversations.get(c.id))


async def test_upserts_replace_and_page(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upsert of stored ids replaces every column; more rows than one statement takes are
    written in pages; an id given twice keeps its last values."""
    monkeypatch.setattr(engine.dialect, "insertmanyvalues_max_parameters", 3 * 16 + 1)
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    many = [conversation(world, phone(100 + i)) for i in range(10)]
    async with make() as uow:
        await uow.conversations.save_many(many)
        await uow.commit()
    for i, c in enumerate(many):
        c.name, c.unread_count, c.last_message_at = f"n{i}", i, at(i)
    first = dataclasses.replace(many[0], name="stale")
    async with make() as uow:
        await uow.conversations.save_many([first, *many])
        await uow.commit()
    async with make() as uow:
        found = await uow.conversations.get_many_by_chat(world.session_id, [c.chat for c in many])
    assert sorted((c.name, c.unread_count, c.last_message_at) for c in found) == sorted(
        (c.name, c.unread_count, c.last_message_at) for c in many
    )
