"""What only a database can show: a failing statement in the middle of a chunk, set-based
writes (statements counted), outbox claims by concurrent workers, event ids in commit order,
concurrent writers on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import at, conversation, message, outbox_entry, phone, seed
from tests.databases import copy_sqlite
from whatsgate.adapters.sql import tables
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.onehop import OneHopConnection, OneHopCursor
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.conversation import Conversation
from whatsgate.domain.errors import AlreadyExists
from whatsgate.domain.events import ContactsSynced


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs: on SQLite as the
    driver gets them (prepared writes do not go through SQLAlchemy there)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split(None, 1)[0].upper())

    if engine.dialect.name == "sqlite":
        statement, executemany = OneHopConnection.statement, OneHopCursor.executemany

        async def one(self: OneHopConnection, sql: str, *args: Any, **kwargs: Any) -> Any:
            record(None, None, sql)
            return await statement(self, sql, *args, **kwargs)

        async def many(self: OneHopCursor, sql: str, *args: Any) -> Any:
            record(None, None, sql)
            return await executemany(self, sql, *args)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(OneHopConnection, "statement", one)
            patch.setattr(OneHopCursor, "executemany", many)
            yield sent
        return
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_database_error_mid_chunk_rolls_back_the_whole_unit(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    chat = conversation(world, phone(1))
    taken = message(world, chat.id, "TAKEN", at(0))
    async with make() as uow:
        await uow.messages.add_new([taken])
        await uow.commit()

    chunk = [message(world, chat.id, f"H{i:04d}", at(i)) for i in range(500)]
    # Row 250 reuses a stored message's primary key: the database refuses the statement.
    chunk[250].id = taken.id

    async def import_chunk() -> None:
        async with make() as uow:
            await uow.conversations.save(chat)
            await uow.messages.add_new(chunk)
            await uow.commit()

    with pytest.raises(AlreadyExists):
        await import_chunk()
    async with make() as uow:
        assert await uow.conversations.get(chat.id) is None
        wa_ids = [m.wa_id or "" for m in chunk]
        assert await uow.messages.existing_wa_ids(world.session_id, wa_ids) == set()
        assert await uow.messages.get(taken.id) is not None


async def test_history_chunks_and_events_are_written_set_based(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    chats = [conversation(world, phone(n)) for n in range(50)]
    chunk = [message(world, chats[i % 50].id, f"H{i:04d}", at(i)) for i in range(500)]
    synced = [
        ContactsSynced(
            organization_id=world.org_id, session_id=world.session_id, occurred_at=at(n), count=n
        )
        for n in range(100)
    ]
    async with make() as uow:
        with statements(engine) as sent:
            await uow.conversations.save_many(chats)
            inserted = await uow.messages.add_new(chunk)
            uow.events.add(*synced)
            await uow.commit()
    assert len(inserted) == 500
    inserts = [s for s in sent if s == "INSERT"]
    # Not one round trip per row: a handful of statements for 650 rows.
    assert 3 <= len(inserts) <= 6, sent
    async with make() as uow:
        assert len(await uow.events.after(0, limit=1000)) == 100


@pytest.mark.postgres
async def test_concurrent_workers_never_claim_the_same_outbox_entry(
    postgres_engine: AsyncEngine,
) -> None:
    make = SqlUnitOfWorkFactory(postgres_engine)
    world = await seed(make)
    entries = [outbox_entry(world, f"m{n}", at(n)) for n in range(30)]
    async with make() as uow:
        for entry in entries:
            await uow.outbox.add(entry)
        await uow.commit()

    claimed: list[list[str]] = [[], [], []]
    both_holding = asyncio.Barrier(3)

    async def worker(n: int) -> None:
        async with make() as uow:
            due = await uow.outbox.due(at(100), limit=7)
            claimed[n].extend(e.id for e in due)
            await both_holding.wait()  # everyone holds their claim at once
            for entry in due:
                entry.succeed(at(101))
                await uow.outbox.save(entry)
            await uow.commit()

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(3))), 10)

    every = [i for ids in claimed for i in ids]
    assert len(every) == 21
    assert len(set(every)) == 21  # nobody got another's row
    oldest_first = [e.id for e in entries]
    assert sorted(every, key=oldest_first.index) == oldest_first[:21]
    async with make() as uow:
        assert await uow.outbox.pending_count() == 9


@pytest.mark.postgres
async def test_event_ids_become_visible_in_commit_order(postgres_engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(postgres_engine)
    world = await seed(make)

    def synced(n: int) -> ContactsSynced:
        return ContactsSynced(
            organization_id=world.org_id, session_id=world.session_id, occurred_at=at(n), count=n
        )

    async with make() as slow:
        slow.events.add(synced(1))
        await slow.events.write_staged()  # id assigned, not committed yet
        async with make() as fast:
            fast.events.add(synced(2))
            committing = asyncio.ensure_future(fast.commit())
            await asyncio.sleep(0.3)
            # The second writer waits: had it committed, a reader at its id would later
            # skip the first writer's smaller id.
            assert not committing.done()
            await slow.commit()
            await asyncio.wait_for(committing, 5)
    async with make() as uow:
        stored = await uow.events.after(0)
    assert [e.data["count"] for e in stored] == [1, 2]


async def test_deleting_a_session_takes_its_webhooks_and_lease(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    webhook = {
        "organization_id": world.org_id,
        "url": "https://example.invalid/hook",
        "events": ["message.new"],
        "secrets": ["s"],
        "active": True,
        "created_at": at(0),
    }
    async with engine.begin() as connection:
        await connection.execute(
            tables.webhooks.insert(),
            [
                {"id": "wh-session", "session_id": world.session_id, **webhook},
                {"id": "wh-org", "session_id": None, **webhook},
            ],
        )
        await connection.execute(
            tables.session_leases.insert().values(
                session_id=world.session_id, node_id="node-1", expires_at=at(60)
            )
        )
    async with make() as uow:
        await uow.sessions.delete(world.session_id)
        await uow.commit()
    async with engine.connect() as connection:
        hooks = (await connection.execute(select(tables.webhooks.c.id))).scalars().all()
        leases = await connection.scalar(select(func.count()).select_from(tables.session_leases))
    assert hooks == ["wh-org"]
    assert leases == 0


async def test_sqlite_writers_wait_for_each_other_instead_of_failing(
    tmp_path: Path, sqlite_template: Path
) -> None:
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    make = SqlUnitOfWorkFactory(engine)
    try:
        world = await seed(make)
        first, second = conversation(world, phone(1)), conversation(world, phone(2))
        async with make() as holder:
            await holder.conversations.save(first)  # takes SQLite's write lock

            async def other_writer() -> None:
                async with make() as uow:
                    await uow.conversations.save(second)
                    await uow.commit()

            waiting = asyncio.ensure_future(other_writer())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # blocked on the lock (busy timeout), not failed
            await holder.commit()
            await asyncio.wait_for(waiting, 5)
        async with make() as uow:
            assert await uow.conversations.get(first.id) is not None
            assert await uow.conversations.get(second.id) is not None
    finally:
        await engine.dispose()


async def test_sqlite_units_that_read_then_write_concurrently_all_commit(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """As the outbox worker, ingest and the HTTP handlers do: read, write, let other coroutines
    run while the transaction is open, read and write again, commit. Six at once, fifteen
    times each: every one commits, none fails "database is locked", though a writer may wait
    only 300 ms for the others (SQLite's busy handler, polling in no order, starved some
    writers past that; the writer lock serves them in turn)."""
    workers, rounds = 6, 15
    engine = create_engine_for(
        copy_sqlite(sqlite_template, tmp_path), busy_timeout_ms=300, pool_size=workers
    )
    make = SqlUnitOfWorkFactory(engine)
    try:
        world = await seed(make)
        chats = [conversation(world, phone(n)) for n in range(workers)]
        async with make() as uow:
            await uow.conversations.save_many(chats)
            await uow.commit()
        failures: list[Exception] = []

        async def worker(n: int) -> None:
            for _ in range(rounds):
                try:
                    async with make() as uow:
                        chat = await uow.conversations.get(chats[n].id)
                        assert chat is not None
                        chat.unread_count += 1
                        await uow.conversations.save(chat)
                        await asyncio.sleep(0.005)  # the transaction stays open meanwhile
                        assert await uow.sessions.get(world.session_id) is not None
                        await uow.conversations.save(chat)
                        await uow.commit()
                except OperationalError as exc:
                    failures.append(exc)

        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(workers))), 30)
        assert failures == []
        async with make() as uow:
            stored = [await uow.conversations.get(chat.id) for chat in chats]
        assert [chat.unread_count if chat else None for chat in stored] == [rounds] * workers
    finally:
        await engine.dispose()


async def test_a_writer_never_holds_up_readers(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    chat = conversation(world, phone(1))
    async with make() as writer:
        await writer.conversations.save(chat)  # a transaction writing, not yet committed

        async def read() -> bool:
            async with make() as reader:
                return await reader.conversations.get(chat.id) is not None

        assert await asyncio.wait_for(read(), 2) is False  # the last commit, at once
        await writer.commit()
    assert await read() is True


async def test_a_sqlite_writer_waits_at_most_the_busy_timeout_then_fails_as_sqlite_does(
    tmp_path: Path, sqlite_template: Path
) -> None:
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path), busy_timeout_ms=100)
    make = SqlUnitOfWorkFactory(engine)
    try:
        world = await seed(make)
        first, second = conversation(world, phone(1)), conversation(world, phone(2))

        async def write(chat: Conversation) -> None:
            async with make() as uow:
                await uow.conversations.save(chat)
                await uow.commit()

        async def fail_while_holding() -> None:
            async with make() as holder:
                await holder.conversations.save(first)
                with pytest.raises(OperationalError, match="database is locked"):
                    await asyncio.wait_for(write(second), 5)
                raise RuntimeError("the holder fails: its unit of work rolls back")

        with pytest.raises(RuntimeError, match="the holder fails"):
            await fail_while_holding()
        await asyncio.wait_for(write(second), 5)  # the rollback let the writers go on
        async with make() as uow:
            assert await uow.conversations.get(first.id) is None
            assert await uow.conversations.get(second.id) is not None
    finally:
        await engine.dispose()


async def test_a_unit_of_prepared_writes_alone_commits_and_rolls_back_whole(
    engine: AsyncEngine,
) -> None:
    """On SQLite the prepared writes reach the driver without SQLAlchemy: the unit of work
    still commits them, and rolls them back (before the next writer goes) when left."""
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    kept, dropped = conversation(world, phone(1)), conversation(world, phone(2))
    async with make() as uow:
        await uow.conversations.save_many([kept])
        await uow.commit()
    async with make() as uow:
        await uow.conversations.save_many([dropped])
        await uow.messages.add_new([message(world, dropped.id, "DROPPED", at(0))])
    async with make() as uow:  # the next writer finds the database free at once
        await uow.messages.add_new([message(world, kept.id, "KEPT", at(1))])
        await uow.commit()
    async with make() as uow:
        assert await uow.conversations.get(kept.id) is not None
        assert await uow.conversations.get(dropped.id) is None
        assert await uow.messages.get_by_wa_id(world.session_id, "KEPT") is not None
        assert await uow.messages.get_by_wa_id(world.session_id, "DROPPED") is None
