"""Engines for the two databases whatsgate runs on.

SQLite (through aiosqlite) is the default: one file in the data directory, WAL journal so
readers never wait for the writer, foreign keys on, a busy timeout instead of instant "database
is locked" errors, ``synchronous=NORMAL`` (safe with WAL). PostgreSQL (through asyncpg) when the
URL says so.

SQLite lets one transaction write at a time. Writers of this process queue on a ``WriterLock``
(one per engine), first come first served, each woken the moment the one before it ends;
SQLite's busy handler, which polls with sleeps of up to 100 ms in no order, is left to writers
in other processes. See "Transactions and events" in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError, MissingGreenlet, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_only

from whatsgate.adapters.sql.onehop import OneHopConnection, WalCheckpointer
from whatsgate.adapters.sql.types import json_text
from whatsgate.domain.errors import WriteConflict

#: PostgreSQL's SQLSTATEs for a transaction it ended so that another could go on: a deadlock
#: (units of work that lock rows, ``UnitOfWork.begin_write``, each waiting for the other's)
#: and a serialization failure.
_ENDED_FOR_ANOTHER = frozenset({"40P01", "40001"})

#: How long a SQLite writer waits for the one before it, then fails "database is locked".
BUSY_TIMEOUT_MS = 5_000

#: Connections a SQLite engine keeps open (file databases): at most this many units of work
#: at once, the others wait for one (``pool_timeout``).
SQLITE_POOL_SIZE = 15

#: Connections a PostgreSQL engine keeps open, the same way, behind ``Admission``: SQLAlchemy's
#: default opened and closed server processes on every burst of requests, and its waiting let
#: newcomers overtake waiters (bench/rest.py's ``pg_*``: GET p99 at 64 connections 0.85 s, 0.35
#: s with this).
POSTGRES_POOL_SIZE = 15

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    # Statements run on the event loop must not wait there: one that finds the database
    # locked by another process runs again on its connection's thread, which waits up to the
    # busy timeout (``OneHopConnection``).
    "PRAGMA busy_timeout=0",
    # Checkpoints run on a thread of their own (``WalCheckpointer``), not in a commit.
    "PRAGMA wal_autocheckpoint=0",
)


class Turns:
    """At most ``count`` holders at a time, the others served in arrival order, each as soon
    as a holder is done. Waiting longer than ``timeout`` seconds fails (``timed_out``)."""

    def __init__(self, count: int, timeout: float) -> None:
        self.timeout = timeout
        self._turns = asyncio.Semaphore(count)

    async def acquire(self) -> None:
        if not self._turns.locked():
            await self._turns.acquire()  # free: taken at once, nothing is awaited
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._turns.acquire()
        except TimeoutError as exc:
            raise self.timed_out() from exc

    def release(self) -> None:
        self._turns.release()

    def timed_out(self) -> Exception:
        raise NotImplementedError


class WriterLock(Turns):
    """One writing transaction at a time on a SQLite database, for this process's writers.

    A unit of work takes it before its first write statement (where SQLite's deferred
    transaction takes the database's write lock) and gives it back when it commits or rolls
    back. Waiting longer than ``timeout`` seconds fails as SQLite does when its busy timeout
    runs out.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(1, timeout)

    def timed_out(self) -> Exception:
        locked = sqlite3.OperationalError("database is locked")
        return OperationalError("-- waiting for this process's other SQLite writer", None, locked)


_writers: weakref.WeakKeyDictionary[Engine, WriterLock] = weakref.WeakKeyDictionary()


class Admission(Turns):
    """Turns at a fixed pool's connections: units of work wait here rather than in the
    pool, whose own waiting lets a newcomer take the connection just handed to a waiter
    (which then waits again, at the back). Waiting longer than ``timeout`` seconds fails as
    the pool does.

    Between turns it keeps the connections units of work handed back, checked out of the
    pool (``hand_back``), and gives the one handed back last to the next turn (``take``):
    checking a connection out of SQLAlchemy's pool and in again took two greenlet hand-overs
    and the pool's reset, ~55 µs of CPU of an empty unit of work's ~65 (bench/live_ingest.py,
    bench/ingest_socketio.py). At most ``count - 1`` are kept, so one is always left in the
    pool for code that uses the engine directly (migrations, tools, tests); the engine's
    ``dispose`` closes them. Only where a kept connection can be checked without a round trip
    (``keeps``): SQLite files, and asyncpg, which notices the server's goodbye on an idle
    connection. Once a connection has failed as one the server dropped, the connections
    taken before are not kept (``forget_kept``), as the pool replaces its own then."""

    def __init__(self, count: int, timeout: float, *, keeps: bool) -> None:
        super().__init__(count, timeout)
        self._most_kept = count - 1 if keeps else 0
        #: Connections handed back, each with the generation it was taken in.
        self._kept: list[tuple[int, AsyncConnection]] = []
        #: Taken before a connection failed as dropped by the server: older than this.
        self.generation = 0

    def timed_out(self) -> Exception:
        return PoolTimeout(f"no database connection free within {self.timeout:g} s", code="qp")

    async def take(self) -> AsyncConnection | None:
        """The connection handed back last that still works, or None (check one out of the
        pool then). Call it holding a turn."""
        while self._kept:
            generation, connection = self._kept.pop()
            if generation == self.generation and _usable(connection):
                return connection
            await connection.invalidate()  # the pool opens another in its place
            await connection.close()
        return None

    async def hand_back(self, connection: AsyncConnection, generation: int) -> None:
        """A unit of work is done with ``connection``, rolled back, which it took in
        ``generation``: keep it for the next turn, or give it back to the pool. Call it
        before giving the turn back."""
        if generation != self.generation and not connection.invalidated:
            await connection.invalidate()  # may be dropped too: the pool opens another
        elif len(self._kept) < self._most_kept and _usable(connection):
            self._kept.append((generation, connection))
            return
        await connection.close()

    def forget_kept(self) -> None:
        """A connection failed as one the server dropped: the others taken so far may be
        dropped too, so none of them is handed out again (``take`` closes them)."""
        self.generation += 1

    def close_kept(self) -> None:
        """Close the connections kept (the engine is disposed); from synchronous code inside
        SQLAlchemy's greenlet, as the engine's events run."""
        kept, self._kept = self._kept, []
        for _generation, connection in kept:
            sync = connection.sync_connection
            if sync is not None and not sync.closed:
                sync.invalidate()  # the driver's connection closed, not handed to the pool
                sync.close()


def _usable(connection: AsyncConnection) -> bool:
    """Open, not invalidated, and (asyncpg) not closed by the server."""
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return False
    is_closed = getattr(sync.connection.driver_connection, "is_closed", None)  # asyncpg's
    return not (callable(is_closed) and is_closed())


_admissions: weakref.WeakKeyDictionary[Engine, Admission] = weakref.WeakKeyDictionary()


def admission(engine: AsyncEngine) -> Admission | None:
    """The engine's ``Admission`` if it keeps a fixed pool (SQLite files, PostgreSQL), else
    None."""
    return _admissions.get(engine.sync_engine)


def writer_lock(engine: AsyncEngine) -> WriterLock | None:
    """The engine's ``WriterLock`` if it is on SQLite; None on other databases, which let
    transactions write concurrently."""
    if engine.dialect.name != "sqlite":
        return None
    sync_engine = engine.sync_engine
    writer = _writers.get(sync_engine)
    if writer is None:
        writer = _writers[sync_engine] = WriterLock(BUSY_TIMEOUT_MS / 1000)
    return writer


def sqlite_url(data_dir: str | Path) -> str:
    """The default database: ``whatsgate.db`` in the data directory."""
    return f"sqlite+aiosqlite:///{Path(data_dir).expanduser().resolve() / 'whatsgate.db'}"


def async_url(url: str) -> str:
    """The URL with the async driver whatsgate uses (``postgresql://`` → asyncpg,
    ``sqlite://`` → aiosqlite); other URLs are returned unchanged."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    driver["sqlite"] = "sqlite+aiosqlite"
    if parsed.drivername in driver:
        parsed = parsed.set(drivername=driver[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def create_engine_for(
    url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, **kwargs: Any
) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``; SQLite connections get whatsgate's pragmas, writers wait
    up to ``busy_timeout_ms`` for each other, and the parent directory of the file is created
    if missing."""
    url = async_url(url)
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", json_text)
    if parsed.get_backend_name() != "sqlite":
        asyncpg = parsed.get_driver_name() == "asyncpg"
        kwargs.setdefault("pool_pre_ping", not asyncpg)  # asyncpg: _closed_by_the_server
        connections = _fixed_pool(kwargs, POSTGRES_POOL_SIZE)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "handle_error", _write_conflict)
        if asyncpg and not kwargs["pool_pre_ping"]:
            event.listen(engine.sync_engine, "checkout", _closed_by_the_server)
        _admit(engine, connections, kwargs)
        return engine
    database = parsed.database or ""
    file = database not in ("", ":memory:") and not database.startswith("file:")
    connections = None
    if file:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # SQLAlchemy's default (5 kept, 10 more opened and closed on demand) opened and
        # closed a connection, its thread and pragmas, on most requests once more than 5
        # were in flight: keep the same 15, open.
        connections = _fixed_pool(kwargs, SQLITE_POOL_SIZE)
        if connections is not None:
            # The connection used last, not the one idle longest: SQLite drops a connection's
            # page cache whenever another has committed since it last read, so rotating
            # through all 15 made every unit of work start cold (~20 % more CPU for a
            # one-message unit of work of ingest, bench/live_ingest.py).
            kwargs.setdefault("pool_use_lifo", True)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "do_connect", _one_hop_connect)
    writers = _writers[engine.sync_engine] = WriterLock(busy_timeout_ms / 1000)
    checkpointer = (
        WalCheckpointer(str(Path(database).expanduser()), writers=writers) if file else None
    )
    pragmas = functools.partial(
        _apply_sqlite_pragmas, busy_timeout_ms=busy_timeout_ms, checkpointer=checkpointer
    )
    event.listen(engine.sync_engine, "connect", pragmas)
    if checkpointer is not None:
        event.listen(
            engine.sync_engine,
            "engine_disposed",
            functools.partial(_wait_for_checkpoint, checkpointer),
        )
    _admit(engine, connections, kwargs)
    return engine


def _closed_by_the_server(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """At checkout from the pool: a connection whose server went away (PostgreSQL restarted,
    or ended its backend) is replaced by a new one, unseen by the unit of work. asyncpg
    notices the server's goodbye on an idle connection (it keeps reading it), so no round
    trip is needed: ``pool_pre_ping`` sent one with every unit of work (4 % of a PostgreSQL
    GET …/conversations in a py-spy profile). A connection cut without a goodbye fails its
    unit of work, and the pool then replaces all of them."""
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")


def _fixed_pool(kwargs: dict[str, Any], size: int) -> int | None:
    """Unless the caller chose the pool: ``size`` connections kept open and no more opened
    (``max_overflow=0``). Returns how many connections the pool may hold, None for a pool
    the caller chose."""
    if "poolclass" in kwargs:
        return None
    kwargs.setdefault("pool_size", size)
    kwargs.setdefault("max_overflow", 0)
    return int(kwargs["pool_size"]) + int(kwargs["max_overflow"])


def _admit(engine: AsyncEngine, connections: int | None, kwargs: dict[str, Any]) -> None:
    """Units of work wait for a connection of a fixed pool in arrival order (``Admission``)."""
    if connections is None:
        return
    # The pool's own waiting (an asyncio.Queue) lets a newcomer take a connection just
    # handed to a waiter, which then queues again at the back: at 64 connections some
    # GETs waited seconds for one (bench/rest.py: p99 0.6-3 s; ~0.2 s in turn).
    timeout = float(kwargs.get("pool_timeout", 30.0))
    keeps = engine.dialect.name == "sqlite" or engine.dialect.driver == "asyncpg"
    turns = _admissions[engine.sync_engine] = Admission(connections, timeout, keeps=keeps)
    event.listen(engine.sync_engine, "engine_disposed", functools.partial(_close_kept, turns))
    event.listen(engine.sync_engine, "invalidate", functools.partial(_dropped, turns))


def _write_conflict(context: ExceptionContext) -> None:
    """A transaction PostgreSQL ended for another's sake (a deadlock) raises ``WriteConflict``:
    it wrote nothing, and the use cases that can meet one run their unit of work again."""
    if getattr(context.original_exception, "sqlstate", None) in _ENDED_FOR_ANOTHER:
        raise WriteConflict(str(context.original_exception)) from context.original_exception


def _close_kept(turns: Admission, _engine: Engine) -> None:
    """On ``dispose``: close the connections units of work left with ``turns``."""
    with contextlib.suppress(MissingGreenlet):  # disposed from synchronous code: left open
        turns.close_kept()


def _dropped(
    turns: Admission, _dbapi: Any, _record: ConnectionPoolEntry, exception: BaseException | None
) -> None:
    """A connection invalidated for an error (SQLAlchemy took it for a disconnect, or the
    checkout found it closed): the pool replaces the connections taken before it, and
    ``turns`` no longer keeps them. An invalidation asked for without an error (``take``'s,
    ``close_kept``'s) says nothing of the others."""
    if exception is not None:
        turns.forget_kept()


def _wait_for_checkpoint(checkpointer: WalCheckpointer, _engine: Engine) -> None:
    """On ``dispose``: wait for the checkpoint running, if any, so that none is still at
    work on the files once the engine is disposed (a test or benchmark then removes them,
    and a late checkpoint would create the log again in a directory being removed)."""
    with contextlib.suppress(MissingGreenlet):  # disposed from synchronous code: no waiting
        await_only(checkpointer.wait())


def _one_hop_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
    """Connect through ``OneHopConnection``: small statements on the event loop, others in
    one round trip to the connection's thread instead of four (see ``onehop``)."""
    return dialect.dbapi.connect(*cargs, async_creator_fn=OneHopConnection.open, **cparams)


def _apply_sqlite_pragmas(
    dbapi_connection: Any,
    _record: Any,
    *,
    busy_timeout_ms: int,
    checkpointer: WalCheckpointer | None,
) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
    driver = getattr(dbapi_connection, "_connection", None)
    if isinstance(driver, OneHopConnection):
        driver.busy_timeout_ms = int(busy_timeout_ms)
        driver.checkpointer = checkpointer
    dbapi_connection.create_function("wg_casefold", 1, _casefold, deterministic=True)


def _casefold(value: object) -> str | None:
    """SQLite's ``lower()`` folds ASCII only; search folds every script, as PostgreSQL does."""
    return None if value is None else str(value).casefold()
