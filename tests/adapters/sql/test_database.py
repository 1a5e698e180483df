"""Engines: the SQLite pragmas, the default URL, the async drivers."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from tests.contract.builders import conversation, phone, seed
from tests.databases import PostgresSchema, copy_sqlite
from whatsgate.adapters.sql.database import (
    BUSY_TIMEOUT_MS,
    SQLITE_POOL_SIZE,
    async_url,
    create_engine_for,
    sqlite_url,
)
from whatsgate.adapters.sql.onehop import OneHopConnection
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory


async def test_sqlite_connections_get_wal_foreign_keys_normal_sync_and_no_waiting_on_the_loop(
    tmp_path: Path,
) -> None:
    engine = create_engine_for(sqlite_url(tmp_path / "data"))
    try:
        async with engine.connect() as connection:

            async def pragma(name: str) -> object:
                return (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()

            assert await pragma("journal_mode") == "wal"
            assert await pragma("foreign_keys") == 1
            # The connection does not wait for a lock (statements run on the event loop);
            # its thread waits up to BUSY_TIMEOUT_MS for another process's writer.
            assert await pragma("busy_timeout") == 0
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, OneHopConnection)
            assert raw.busy_timeout_ms == BUSY_TIMEOUT_MS
            assert await pragma("synchronous") == 1  # NORMAL
            assert await pragma("wal_autocheckpoint") == 0  # WalCheckpointer does it
            folded = await connection.execute(text("SELECT wg_casefold('ÓTICA ß')"))
            assert folded.scalar_one() == "ótica ss"
    finally:
        await engine.dispose()
    assert (tmp_path / "data" / "whatsgate.db").exists()


async def test_sqlite_keeps_its_connections_open_when_many_are_in_use(tmp_path: Path) -> None:
    """Connections handed back are kept (not closed and opened again per request), and at
    most ``SQLITE_POOL_SIZE`` are in use at once."""
    engine = create_engine_for(sqlite_url(tmp_path))
    pool = engine.sync_engine.pool
    try:
        async with AsyncExitStack() as stack:
            for _ in range(SQLITE_POOL_SIZE):
                await stack.enter_async_context(engine.connect())
            assert pool.checkedout() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
            waiting = asyncio.ensure_future(engine.connect().start())
            await asyncio.sleep(0.05)
            assert not waiting.done()  # the next one waits for a connection handed back
            waiting.cancel()
        assert pool.checkedin() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def test_default_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/whatsgate.db"


def test_urls_get_the_async_drivers() -> None:
    assert async_url("postgresql://u:p%40ss@db:5432/wg") == (
        "postgresql+asyncpg://u:p%40ss@db:5432/wg"
    )
    assert async_url("postgres://db/wg") == "postgresql+asyncpg://db/wg"
    assert async_url("postgresql+asyncpg://db/wg") == "postgresql+asyncpg://db/wg"
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"


async def test_units_of_work_take_turns_at_the_pool_in_arrival_order(tmp_path: Path) -> None:
    """More units of work than connections: they get one in the order they came (the pool's
    own waiting let newcomers take a connection before a waiter), never more at once than
    the pool holds, and a wait past the pool timeout fails as the pool's does."""
    engine = create_engine_for(sqlite_url(tmp_path), pool_size=2, pool_timeout=0.2)
    make = SqlUnitOfWorkFactory(engine)
    order: list[int] = []
    inside = 0
    most = 0
    release = asyncio.Event()
    try:

        async def unit(n: int) -> None:
            nonlocal inside, most
            async with make():
                inside += 1
                most = max(most, inside)
                order.append(n)
                await release.wait()
                await asyncio.sleep(0)
                inside -= 1

        tasks = []
        for n in range(8):
            tasks.append(asyncio.ensure_future(unit(n)))
            await asyncio.sleep(0.001)  # arrivals in this order
        await asyncio.sleep(0.05)
        assert order == [0, 1]
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert order == list(range(8))
        assert most == 2

        async with make(), make():
            with pytest.raises(PoolTimeout):
                async with make():
                    pass
        async with make():  # turns given back: nothing leaked by the failure
            pass
    finally:
        await engine.dispose()


async def test_a_waiting_unit_of_work_is_not_overtaken_by_a_newcomer(tmp_path: Path) -> None:
    """A connection handed back goes to the unit of work that waited for it, not to one that
    asks in the same instant (the pool alone gave it to the newcomer, and the waiter queued
    again at the back: under load some requests waited seconds)."""
    await _the_waiter_goes_first(create_engine_for(sqlite_url(tmp_path), pool_size=1))


@pytest.mark.postgres
async def test_a_waiting_unit_of_work_is_not_overtaken_by_a_newcomer_on_postgresql(
    postgres_schema: PostgresSchema,
) -> None:
    """The same on PostgreSQL, whose engine keeps a fixed pool too (SQLAlchemy's default
    opened and closed a server process per burst of requests, and its waiting let GETs at 64
    connections wait 0.8 s at p99, bench/rest.py)."""
    await _the_waiter_goes_first(postgres_schema.engine(pool_size=1))


async def _the_waiter_goes_first(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    got: list[str] = []
    try:

        async def waiter() -> None:
            async with make():
                got.append("waiter")

        holder = make()
        await holder.__aenter__()
        waiting = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.05)
        assert got == []  # a fixed pool: it waits for the only connection, none is opened
        await holder.__aexit__(None, None, None)
        newcomer = make()  # asks at once, before the waiter had a chance to run
        await newcomer.__aenter__()  # in this task: no turn of the loop before it asks
        got.append("newcomer")
        await newcomer.__aexit__(None, None, None)
        await asyncio.wait_for(waiting, 5)
        assert got == ["waiter", "newcomer"]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_pooled_connection_the_server_closed_is_replaced_unseen_on_postgresql(
    postgres_schema: PostgresSchema,
) -> None:
    """PostgreSQL restarted, or ended the backend of an idle pooled connection: the next
    unit of work gets a working connection instead of failing on the dead one."""
    engine = postgres_schema.engine()
    make = SqlUnitOfWorkFactory(engine)
    try:
        async with make() as uow:
            pid = (await uow.connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with make() as uow:  # the pool hands the same connection back
            again = (await uow.connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again == pid
        admin = postgres_schema.engine(poolclass=NullPool)
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f"SELECT pg_terminate_backend({int(pid)})"))
        finally:
            await admin.dispose()
        await asyncio.sleep(0.2)  # the server's goodbye reaches the idle connection
        async with make() as uow:
            now = (await uow.connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert now != pid
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_unit_of_work_that_only_reads_opens_no_transaction_on_postgresql(
    postgres_schema: PostgresSchema,
) -> None:
    """Reads alone run in autocommit (no BEGIN, no ROLLBACK: two round trips a request);
    the first write begins the transaction, which holds what follows; and the pool's
    connection goes back as other users expect it, transactions as usual."""
    engine = postgres_schema.engine(pool_size=1)
    make = SqlUnitOfWorkFactory(engine)

    async def two_transaction_times(connection: Any) -> tuple[Any, Any]:
        first = (await connection.execute(text("SELECT now()"))).scalar_one()
        await asyncio.sleep(0.02)
        return first, (await connection.execute(text("SELECT now()"))).scalar_one()

    try:
        world = await seed(make)
        async with make() as uow:
            assert await uow.sessions.get(world.session_id) is not None
            first, second = await two_transaction_times(uow.connection)
            assert first != second  # each statement its own transaction
            await uow.conversations.save(conversation(world, phone(3)))  # a write: BEGIN
            first, second = await two_transaction_times(uow.connection)
            assert first == second  # one transaction from the write on
            await uow.commit()
        async with engine.begin() as connection:  # the same pooled connection
            first, second = await two_transaction_times(connection)
            assert first == second
    finally:
        await engine.dispose()


def _driver(uow: Any) -> Any:
    return uow.connection.sync_connection.connection.driver_connection


async def test_a_unit_of_work_gets_the_connection_the_one_before_handed_back(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """Units of work one after the other share a connection without checking it out of the
    pool and in again (two greenlet hand-overs and a reset, most of an empty unit of work's
    CPU); one is always left in the pool for code using the engine directly, and disposing
    the engine closes the connections kept."""
    engine = create_engine_for(
        copy_sqlite(sqlite_template, tmp_path), pool_size=3, pool_timeout=0.5
    )
    make = SqlUnitOfWorkFactory(engine)
    checkouts: list[object] = []
    event.listen(engine.sync_engine, "checkout", lambda *args: checkouts.append(args))
    try:
        world = await seed(make)
        drivers = set()
        for _ in range(5):
            async with make() as uow:
                assert await uow.sessions.get(world.session_id) is not None
                drivers.add(_driver(uow))
        assert len(drivers) == 1
        assert len(checkouts) == 1

        async with make() as a, make() as b, make() as c:  # the whole pool at once
            drivers |= {_driver(a), _driver(b), _driver(c)}
        assert len(drivers) == 3
        async with engine.connect() as connection:  # one is left in the pool
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    assert drivers and all(driver._connection is None for driver in drivers)  # all closed


async def test_a_kept_connection_holds_nothing_of_the_unit_of_work_before(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """A unit of work that failed half-way through its writes hands its connection on rolled
    back: the next one sees none of its writes, holds no transaction, and can write."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path), pool_size=3)
    make = SqlUnitOfWorkFactory(engine)
    try:
        world = await seed(make)
        failed = make()
        await failed.__aenter__()
        await failed.begin_write()
        await failed.conversations.save(conversation(world, phone(1)))
        first = _driver(failed)
        await failed.__aexit__(RuntimeError, RuntimeError("half-way"), None)
        async with make() as uow:
            assert _driver(uow) is first
            assert not first.in_transaction
            assert await uow.conversations.get_by_chat(world.session_id, phone(1)) is None
            await uow.begin_write()
            await uow.conversations.save(conversation(world, phone(2)))
            await uow.commit()
        async with make() as uow:
            assert await uow.conversations.get_by_chat(world.session_id, phone(2)) is not None
    finally:
        await engine.dispose()


async def test_a_connection_that_failed_is_not_kept(tmp_path: Path, sqlite_template: Path) -> None:
    """A connection SQLAlchemy invalidated (the driver failed) is replaced, and one whose
    unit of work could not roll back goes back to the pool (which resets it), not straight to
    the next unit of work."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path), pool_size=3)
    make = SqlUnitOfWorkFactory(engine)
    checkouts: list[object] = []
    event.listen(engine.sync_engine, "checkout", lambda *args: checkouts.append(args))
    try:
        async with make() as uow:
            invalidated = _driver(uow)
            await uow.connection.invalidate()
        async with make() as uow:
            kept = _driver(uow)
        assert kept is not invalidated
        assert len(checkouts) == 2

        broken = make()
        await broken.__aenter__()
        assert _driver(broken) is kept
        assert len(checkouts) == 2  # handed on, not checked out

        async def fails() -> None:
            raise OSError("rollback failed")

        broken.rollback = fails  # type: ignore[method-assign]
        with pytest.raises(OSError, match="rollback failed"):
            await broken.__aexit__(None, None, None)
        async with make() as uow:
            assert len(checkouts) == 3  # from the pool, after its reset
            assert not _driver(uow).in_transaction
            assert (await uow.connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_once_a_connection_failed_as_dropped_the_others_kept_are_not_handed_out(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """A connection SQLAlchemy invalidated for an error it took for a disconnect (the server
    went away): the pool replaces the connections checked out before, and the units of work
    no longer hand on the ones they kept; those taken afterwards are kept again."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path), pool_size=3)
    make = SqlUnitOfWorkFactory(engine)
    try:
        async with make() as a, make() as b, make() as c:
            before = {_driver(a), _driver(b), _driver(c)}
            await c.connection.invalidate(ConnectionResetError("server closed the connection"))
        async with make() as d, make() as e:
            after = {_driver(d), _driver(e)}
        assert not after & before
        async with make() as f:
            assert _driver(f) in after
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_kept_connection_reads_in_autocommit_again_on_postgresql(
    postgres_schema: PostgresSchema,
) -> None:
    """The connection a unit of work that wrote handed on reads in autocommit again for the
    next one, until its first write."""
    engine = postgres_schema.engine(pool_size=3)
    make = SqlUnitOfWorkFactory(engine)

    async def backend(uow: Any) -> int:
        return int((await uow.connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    async def same_transaction(uow: Any) -> bool:
        first = (await uow.connection.execute(text("SELECT now()"))).scalar_one()
        await asyncio.sleep(0.02)
        return bool(first == (await uow.connection.execute(text("SELECT now()"))).scalar_one())

    try:
        world = await seed(make)
        async with make() as uow:
            await uow.conversations.save(conversation(world, phone(3)))
            assert await same_transaction(uow)
            pid = await backend(uow)
            await uow.commit()
        async with make() as uow:
            assert await backend(uow) == pid  # the connection kept
            assert not await same_transaction(uow)
            await uow.conversations.save(conversation(world, phone(4)))
            assert await same_transaction(uow)
    finally:
        await engine.dispose()
