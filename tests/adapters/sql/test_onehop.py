"""SQLite statements on the event loop when they cannot keep it waiting, else in one round
trip to the connection's thread (``onehop``); WAL checkpoints off the commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from whatsgate.adapters.sql.database import WriterLock, create_engine_for
from whatsgate.adapters.sql.onehop import READ_BUDGET_STEPS, OneHopConnection, WalCheckpointer

#: A read of well over ``READ_BUDGET_STEPS`` SQLite steps (and its answer).
LONG_READ = (
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 200000)"
    " SELECT count(*), thread() FROM r"
)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls handed to a connection's thread, by function name."""
    handed: list[str] = []
    hand_over = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", "?")
        if name == "_patiently":  # OneHopConnection.in_thread: name what it runs
            name = args[1].__name__
        handed.append(name)
        return await hand_over(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return handed


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
    yield engine
    await engine.dispose()


async def driver_of(connection: AsyncConnection) -> OneHopConnection:
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, OneHopConnection)
    # ``thread()`` in SQL: the thread running the statement.
    await raw.in_thread(_add_thread_function)
    return raw


def _add_thread_function(conn: sqlite3.Connection) -> None:
    conn.create_function("thread", 0, threading.get_ident)


async def test_small_statements_run_on_the_event_loop_and_answer_as_before(
    engine: AsyncEngine, trips: list[str]
) -> None:
    loop_thread = threading.get_ident()
    async with engine.connect() as connection:
        await driver_of(connection)
        trips.clear()
        await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'one')"))
        rows = (await connection.execute(text("SELECT a, b, thread() FROM t"))).all()
        assert [tuple(r) for r in rows] == [(1, "one", loop_thread)]
        returned = await connection.execute(text("INSERT INTO t (b) VALUES ('two') RETURNING a"))
        assert returned.scalar_one() == 2
        updated = await connection.execute(text("UPDATE t SET b = 'TWO' WHERE a = 2"))
        assert updated.rowcount == 1
        await connection.commit()
        assert trips == []  # not one hand-over to the thread
        # Lists (executemany) take one round trip.
        inserted = await connection.execute(
            text("INSERT INTO t (a, b) VALUES (:a, :b)"), [{"a": 3, "b": "3"}, {"a": 4, "b": "4"}]
        )
        assert inserted.rowcount == 2
        assert trips == ["_executemany"]
        await connection.execute(text("INSERT INTO t (a, b) VALUES (5, 'five')"))
        await connection.rollback()  # a write is rolled back, for real
        count = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert count == 2
        with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
            await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'again')"))
    assert trips == ["_executemany"]


async def test_a_delete_runs_on_the_thread(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'one'), (2, 'two')"))
    trips.clear()
    async with engine.begin() as connection:
        deleted = await connection.execute(text("DELETE FROM t WHERE a > 0"))
        assert deleted.rowcount == 2
    assert trips == ["_execute"]  # the delete; the commit is on the loop


async def test_a_read_past_its_budget_runs_again_on_the_thread(
    engine: AsyncEngine, trips: list[str]
) -> None:
    """Stopped on the loop (nothing done), read again on the thread: the answer is whole; a
    transaction open around it keeps what it wrote."""
    loop_thread = threading.get_ident()
    assert READ_BUDGET_STEPS < 200_000
    async with engine.connect() as connection:
        raw = await driver_of(connection)
        await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'kept')"))
        trips.clear()
        count, thread = (await connection.execute(text(LONG_READ))).one()
        assert count == 200_000
        assert thread != loop_thread
        assert trips == ["_execute"]
        rows = await raw.rows("SELECT count(*), thread() FROM t", ())
        assert rows == [(1, loop_thread)]  # and the next small read is back on the loop
        await connection.commit()
    async with engine.connect() as connection:
        kept = (await connection.execute(text("SELECT b FROM t"))).scalars().all()
    assert kept == ["kept"]


async def test_a_write_locked_by_another_process_waits_on_the_thread_not_the_loop(
    tmp_path: Path,
) -> None:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=3_000)
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None, check_same_thread=False)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        other.execute("INSERT INTO t (a, b) VALUES (1, 'other')")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())

        async def write() -> None:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t (a, b) VALUES (2, 'ours')"))

        writing = asyncio.ensure_future(write())
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the lock...
        assert ticks >= 10  # ...on the thread: the loop went on meanwhile
        threading.Timer(0.05, lambda: other.execute("COMMIT")).start()
        await asyncio.wait_for(writing, 5)
        ticker.cancel()
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT a, b FROM t ORDER BY a"))).all()
        assert [tuple(r) for r in rows] == [(1, "other"), (2, "ours")]
    finally:
        other.close()
        await engine.dispose()


async def test_a_write_locked_by_another_process_fails_after_the_busy_timeout(
    tmp_path: Path,
) -> None:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=100)
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t (a, b) VALUES (2, 'ours')"))
        other.execute("ROLLBACK")
        async with engine.begin() as connection:  # the connection is fine afterwards
            await connection.execute(text("INSERT INTO t (a, b) VALUES (2, 'ours')"))
            raw = await driver_of(connection)
            assert await raw.rows("SELECT thread()", ()) == [(threading.get_ident(),)]
    finally:
        other.close()
        await engine.dispose()


async def test_a_statement_asked_to_commit_commits_with_it(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.connect() as connection:
        raw = await driver_of(connection)
        conn = raw._connection
        assert conn is not None
        trips.clear()
        await raw.statement("INSERT INTO t (a, b) VALUES (1, 'one')")
        returned = await raw.statement("INSERT INTO t (b) VALUES ('two') RETURNING a", commit=True)
        assert returned[1] == [(2,)]
        assert not conn.in_transaction  # committed, with it
        # A failing statement commits nothing (and rolls back as before).
        await raw.statement("INSERT INTO t (a, b) VALUES (3, 'three')")
        with pytest.raises(sqlite3.IntegrityError):
            await raw.statement("INSERT INTO t (a, b) VALUES (1, 'again')", commit=True)
        assert conn.in_transaction
        await raw.rollback()
        # On the thread (a DELETE), the commit goes with it in the same round trip.
        await raw.statement("DELETE FROM t WHERE a = 2", commit=True)
        assert trips == ["_execute_then_commit"]
        assert not conn.in_transaction
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT a, b FROM t ORDER BY a"))).all()
        assert [tuple(r) for r in rows] == [(1, "one")]


async def test_the_wal_is_checkpointed_off_the_commits(tmp_path: Path) -> None:
    """No commit checkpoints (``wal_autocheckpoint=0``): the checkpointer does, on its own
    thread, once enough rows were written; the database file then holds them."""
    database = tmp_path / "x.db"
    engine = create_engine_for(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as connection:
            raw = await driver_of(connection)
            checkpointer = raw.checkpointer
            assert checkpointer is not None
            await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
            await connection.commit()
            await checkpointer.wait()
            before = database.stat().st_size
            done = checkpointer.checkpoints
            for n in range(checkpointer.every_rows // 100 - 1):  # just short of the threshold
                values = ", ".join(f"({n * 100 + i}, '{'x' * 200}')" for i in range(100))
                await connection.execute(text(f"INSERT INTO t (a, b) VALUES {values}"))
                await connection.commit()
            await checkpointer.wait()
            assert checkpointer.checkpoints == done
            assert database.stat().st_size == before  # every page is still in the WAL only
            values = ", ".join(f"({10**6 + i}, 'x')" for i in range(100))
            await connection.execute(text(f"INSERT INTO t (a, b) VALUES {values}"))
            await connection.commit()
            await checkpointer.wait()
            assert checkpointer.checkpoints == done + 1
            assert database.stat().st_size > before + 100 * 200  # copied into the database
    finally:
        await engine.dispose()


async def test_each_statement_lets_the_loop_run_others_first(engine: AsyncEngine) -> None:
    """A unit of work on the loop does not run from start to end in one go: other tasks run
    between its statements, as they did while a statement went to the thread."""
    order: list[str] = []

    async def other() -> None:
        for _ in range(3):
            order.append("other")
            await asyncio.sleep(0)

    async with engine.connect() as connection:
        raw = await driver_of(connection)
        running = asyncio.ensure_future(other())
        for n in range(3):
            await raw.statement(f"INSERT INTO t (a, b) VALUES ({n}, 'x')")
            order.append("statement")
        await running
        await raw.rollback()
    assert order[:4] == ["other", "statement", "other", "statement"]


def _wal_frames(database: Path) -> int:
    """How long the log is now, in frames (a passive checkpoint says so)."""
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


@pytest.mark.parametrize("between_writers", [True, False])
async def test_a_long_wal_is_started_over_though_writers_never_pause(
    tmp_path: Path, between_writers: bool
) -> None:
    """A writer commits while the checkpoint copies the log, as under steady load: SQLite
    then never starts the log over (the next writer finds part of it not copied). Once the
    log is long, the checkpoint copies the rest with the writers' turn held, and the writer
    after it starts the log over. Without the turn (``writers=None``) the log keeps
    growing."""
    database = tmp_path / "x.db"
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    writer.executemany("INSERT INTO t (b) VALUES (?)", [("x" * 500,)] * 200)
    turns = WriterLock(5.0)
    checkpointer = WalCheckpointer(
        str(database), every_rows=1, writers=turns if between_writers else None, restart_frames=100
    )
    await turns.acquire()  # a writer in the middle of its unit of work
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t (b) VALUES ('commit behind the copy')")
    checkpointer.wrote(1)  # the first copy runs meanwhile, and finds the log long
    async with asyncio.timeout(5):
        while checkpointer.checkpoints == 0:  # noqa: ASYNC110 - counted on an executor thread
            await asyncio.sleep(0.01)
    writer.execute("COMMIT")
    turns.release()
    await checkpointer.wait()
    assert checkpointer.catch_ups == (1 if between_writers else 0)
    writer.execute("INSERT INTO t (b) VALUES ('the next writer')")
    frames = _wal_frames(database)
    writer.close()
    if between_writers:
        assert frames < 10  # started over: this commit's pages only
    else:
        assert frames > 200


async def test_disposing_of_the_engine_waits_for_the_checkpoint_at_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint still at work after ``dispose`` would create the log again in a
    directory its owner is removing (a benchmark's scratch directory did fail so)."""
    copy = WalCheckpointer._checkpoint

    def slow(self: WalCheckpointer) -> tuple[int, int] | None:
        time.sleep(0.3)
        return copy(self)

    monkeypatch.setattr(WalCheckpointer, "_checkpoint", slow)
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with engine.connect() as connection:
        raw = await driver_of(connection)
        checkpointer = raw.checkpointer
        assert checkpointer is not None
        checkpointer.every_rows = 1
        await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY)"))
        await connection.execute(text("INSERT INTO t (a) VALUES (1)"))
        await connection.commit()
    running = checkpointer._running
    assert running is not None and not running.done()
    await engine.dispose()
    assert running.done()


async def test_a_checkpoint_after_the_database_is_gone_does_nothing(tmp_path: Path) -> None:
    """A checkpoint that starts once the file was removed (a finished test) neither fails
    nor creates an empty database in its place."""
    database = tmp_path / "gone.db"
    sqlite3.connect(database).close()
    checkpointer = WalCheckpointer(str(database), every_rows=1)
    database.unlink()
    checkpointer.wrote(1)
    await checkpointer.wait()
    assert checkpointer.checkpoints == 0
    assert not database.exists()
