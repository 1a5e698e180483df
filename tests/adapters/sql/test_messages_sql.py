"""``SqlMessages.add_new`` hands the driver values it prepared itself (no Core bind
processing): the rows it stores must be exactly those a Core insert of ``mapping.message_row``
stores, on each database, so reads, sorting and comparisons cannot tell them apart. The
reads by hand (``get_many``, the outbox's) must read what Core reads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import (
    at,
    fields_of,
    full_messages,
    full_outbox_entry,
    message,
    outbox_entry,
    seed,
)
from whatsgate.adapters.sql import mapping, tables
from whatsgate.adapters.sql.types import UtcDateTime, sqlite_text
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.ids import new_id
from whatsgate.domain.message import Message, MessageKind
from whatsgate.domain.outbox import OutboxState


def _shapes(world: Any) -> list[Message]:
    """Every shape of message, with times aware in UTC, aware elsewhere, naive, and on a
    whole second (no microseconds)."""
    minus_three = timezone(timedelta(hours=-3))
    return [
        *full_messages(world, "c1"),
        message(world, "c1", "PLAIN", at(5)),
        message(world, "c1", None, at(6), sender=None, text=None, kind=MessageKind.STICKER),
        message(world, "c1", "ELSEWHERE", at(7).astimezone(minus_three)),
        message(world, "c1", "NAIVE", datetime(2026, 3, 4, 5, 6, 7, 1)),
        message(world, "c1", "WHOLE", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        message(world, "c1", "OLD", datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ]


def _twin(m: Message, suffix: str) -> Message:
    """The same message under another id and WhatsApp id."""
    copy = dataclasses.replace(m, id=new_id(), wa_id=None if m.wa_id is None else m.wa_id + suffix)
    copy.reactions = dict(m.reactions)
    return copy


async def _stored(engine: AsyncEngine) -> dict[str | None, tuple[Any, ...]]:
    """Every stored message as the database holds it (as text), by WhatsApp id, without the
    columns that differ by construction (id, wa_id)."""
    t = tables.messages
    kept = [c for c in t.c if c.name not in ("id", "wa_id")]
    stmt = select(t.c.wa_id, *(cast(c, Text).label(c.name) for c in kept))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


async def test_add_new_stores_the_rows_the_core_path_stores(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = _shapes(world)
    by_core = [_twin(m, "-core") for m in shapes]
    async with engine.begin() as conn:  # Core: the row as SQLAlchemy binds it
        await conn.execute(tables.messages.insert(), [mapping.message_row(m) for m in by_core])
    async with make() as uow:
        assert len(await uow.messages.add_new(shapes)) == len(shapes)
        await uow.commit()

    stored = await _stored(engine)
    for m in shapes:
        if m.wa_id is not None:
            assert stored[m.wa_id] == stored[m.wa_id + "-core"], m.wa_id

    def read(m: Message | None) -> dict[str, Any]:
        assert m is not None
        return {k: v for k, v in dataclasses.asdict(m).items() if k not in ("id", "wa_id")}

    async with make() as uow:
        for m, twin in zip(shapes, by_core, strict=True):
            assert read(await uow.messages.get(m.id)) == read(await uow.messages.get(twin.id))


async def test_pages_of_statements(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """More rows or ids than one statement takes (the dialect's limit on parameters, made
    small here): every page is written and read, and what is stored already is skipped in
    every page."""
    monkeypatch.setattr(engine.dialect, "insertmanyvalues_max_parameters", 3 * 26 + 1)
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    many = [message(world, "c1", f"W{i:05d}", at(i)) for i in range(200)]
    wa_ids = [m.wa_id or "" for m in many]
    async with make() as uow:
        first = await uow.messages.add_new(many[::2])
        await uow.commit()
    assert len(first) == 100
    async with make() as uow:
        assert await uow.messages.existing_wa_ids(world.session_id, wa_ids) == set(wa_ids[::2])
        second = await uow.messages.add_new(many)
        await uow.commit()
    assert [m.wa_id for m in second] == wa_ids[1::2]
    async with make() as uow:
        assert await uow.messages.existing_wa_ids(world.session_id, [*wa_ids, "nope"]) == set(
            wa_ids
        )


def test_sqlite_text_is_what_utc_datetime_stores() -> None:
    """The text written by the bulk insert equals UtcDateTime's bind value as SQLite's
    DATETIME formats it."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    bind = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    values = [
        datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 1),
        datetime(2026, 3, 4, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3))),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ]
    for value in values:
        assert sqlite_text(value) == bind(value)


async def test_get_many_reads_what_the_core_path_reads(engine: AsyncEngine) -> None:
    """``get_many`` reads the driver's values by hand (``mapping.message_of``): every shape of
    message, times from anywhere, reads back as ``get`` (Core, ``to_message``) reads it."""
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    shapes = _shapes(world)
    async with make() as uow:
        await uow.messages.save_many(shapes)
        await uow.commit()
    ids = [m.id for m in shapes]
    async with make() as uow:
        many = await uow.messages.get_many([*reversed(ids), "absent", ids[0]])
        one = [await uow.messages.get(i) for i in sorted(ids)]
    assert [m.id for m in many] == sorted(ids)
    assert [fields_of(m) for m in many] == [fields_of(m) for m in one if m is not None]
    assert all(m.timestamp.tzinfo is UTC and m.created_at.tzinfo is UTC for m in many)
    kinds = {m.kind for m in many}
    assert len(kinds) >= 6 and any(m.poll for m in many) and any(m.media for m in many)


async def test_outbox_reads_read_what_the_core_path_reads(engine: AsyncEngine) -> None:
    """The outbox's reads by hand (``mapping.outbox_of``: ``get_many``, the claim's
    ``fronts``, ``heads``) read entries as a Core read (``to_outbox``) does."""
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    elsewhere = timezone(timedelta(hours=5, minutes=30))
    entries = [
        full_outbox_entry(world),
        outbox_entry(world, "msg-2", at(31).astimezone(elsewhere)),
        outbox_entry(world, "msg-3", datetime(2026, 3, 4, 5, 6, 7, 1), throttled=False),
    ]
    entries[0].state = OutboxState.PENDING  # else the claim does not read it
    async with make() as uow:
        await uow.outbox.save_many(entries)
        await uow.commit()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(tables.outbox).order_by(tables.outbox.c.id))).all()
    core = {e.id: fields_of(e) for e in (mapping.to_outbox(r) for r in rows)}
    async with make() as uow:
        many = await uow.outbox.get_many([e.id for e in reversed(entries)] + ["absent"])
        fronts = await uow.outbox.fronts(world.session_id, limit=10)
        heads = await uow.outbox.heads()
    assert [e.id for e in many] == sorted(core)
    assert {e.id: fields_of(e) for e in many} == core
    assert [fields_of(e) for e in fronts] == [core[e.id] for e in fronts]
    assert {e.id for e in fronts} == set(core)
    assert [fields_of(e) for e in heads] == [core[e.id] for e in heads] and len(heads) == 1
    assert {e.throttled for e in many} == {True, False}
    assert all(type(e.throttled) is bool for e in many)  # not 1 or 0: it is sent as JSON
    assert all(e.next_attempt_at.tzinfo is UTC for e in many)
