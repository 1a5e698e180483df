"""aiosqlite that runs small statements on the event loop, and others in one round trip.

SQLAlchemy's aiosqlite adapter makes four round trips to the connection's thread for every
statement (make a cursor, execute, fetch the rows, close the cursor), each a hand-over of the
GIL between the event loop and that thread that waits for the scheduler on a busy machine. A
small unit of work (a live message, a POST) spent more time handing over than in SQLite.

Here a statement runs, fetches its rows and closes in one call, and that call is made **on
the event loop** when it cannot keep the loop waiting (``OneHopConnection.statement``):

- writes other than ``DELETE``: SQLite lets one transaction write at a time, and this
  process's writers queue on the ``WriterLock`` before their first write, so a write never
  waits for another of this process. The connection's busy timeout is 0: a write that finds
  the database locked by another process fails at once with ``SQLITE_BUSY`` (nothing done)
  and runs again on the connection's thread, waiting there up to the busy timeout as before;
- reads, within a budget of SQLite VM steps (``READ_BUDGET_STEPS``, about a millisecond): a
  read that needs more is interrupted and runs again on the thread;
- ``DELETE`` (a session's or a webhook's rows, any number of them), ``executemany`` (lists,
  history chunks) and anything while the thread still works for this connection run on the
  thread, in one round trip each.

Each statement first lets the event loop run what else is ready (``asyncio.sleep(0)``), as
a hand-over did: without it a request ran from start to end in one go, and at 64 busy
connections some waited seconds (bench/rest.py: p99 1,260 ms instead of 353 ms).

WAL checkpoints, which copy the log back into the database and sync it (milliseconds), are
taken off the commits: the connections do not checkpoint on their own
(``wal_autocheckpoint=0``) and ``WalCheckpointer`` runs one on a thread of its own every
~1,000 rows written (about SQLite's own threshold). Results are always buffered, as
SQLAlchemy's adapter buffers them anyway (no server-side cursors).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol, Self
from urllib.request import pathname2url

import aiosqlite

_Row = tuple[Any, ...]

log = logging.getLogger("whatsgate.sql")

#: ``sqlite_errorcode`` of "database is locked" by another connection (waiting can cure it;
#: ``SQLITE_BUSY_SNAPSHOT``, 517, cannot, and fails as it always did).
_SQLITE_BUSY = 5
#: ``sqlite_errorcode`` of a statement stopped by the progress handler.
_SQLITE_INTERRUPT = 9

#: SQLite VM steps a read may take on the event loop before it is stopped and run again on
#: the connection's thread: about a millisecond (50-90 M steps/s on the benchmark machine).
READ_BUDGET_STEPS = 100_000


class OneHopCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy uses: a statement on the event loop or in
    one round trip to the thread (``OneHopConnection.statement``)."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[_Row] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Self:
        outcome = await self._connection.statement(sql, parameters)
        self.description, self._rows, self.rowcount, self.lastrowid = outcome
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Self:
        outcome = await self._connection.in_thread(_executemany, sql, parameters)
        self.description, self._rows, self.rowcount, self.lastrowid = outcome
        return self

    async def fetchall(self) -> list[_Row]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> _Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[_Row]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []


_Outcome = tuple[Any, list[_Row], int, int | None]


def _outcome(cursor: sqlite3.Cursor) -> _Outcome:
    """What the cursor of a statement just run has to say, its rows fetched."""
    description = cursor.description
    rows = cursor.fetchall() if description else []
    return description, rows, cursor.rowcount, cursor.lastrowid


def _execute(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        return _outcome(cursor)
    finally:
        cursor.close()


def _executemany(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return _outcome(cursor)
    finally:
        cursor.close()


def _execute_then_commit(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    outcome = _execute(connection, sql, parameters)
    connection.commit()
    return outcome


def _stop() -> int:
    return 1  # the progress handler's "interrupt": the read ran out of its budget


#: How statements that may run on the event loop begin; the rest always go to the thread:
#: deletes (any number of rows) and what SQLAlchemy is not known to send (``WITH …`` may
#: write). A ``BEGIN IMMEDIATE`` that finds another process writing waits on the thread.
_LOOP_HEADS = ("SELECT", "INSERT", "UPDATE", "PRAGMA", "REPLACE", "BEGIN")


def _waits(exc: sqlite3.OperationalError) -> bool:
    """Locked by another connection: nothing was done, and waiting can cure it."""
    return exc.sqlite_errorcode == _SQLITE_BUSY


class OneHopConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose statements run on the event loop when they cannot
    keep it waiting, else in one round trip to the connection's thread (see the module)."""

    @classmethod
    def open(cls, database: str, **kwargs: Any) -> OneHopConnection:
        """As ``aiosqlite.connect``: await the result to open it."""
        connection = cls(partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does: never hold the process open
        return connection

    #: How long a statement on the thread waits for another process's writer (ms). The
    #: connection itself does not wait (``PRAGMA busy_timeout=0``): on the event loop a wait
    #: would stop everything else.
    busy_timeout_ms = 0
    #: Told of the rows each commit changed (file databases; set with the pragmas).
    checkpointer: WalCheckpointer | None = None
    _changes = 0
    #: Calls handed to the thread, and calls the thread finished (each counter is written by
    #: one thread only): while they differ, statements queue behind them on the thread.
    _handed = 0
    _finished = 0

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def statement(
        self, sql: str, parameters: Sequence[Any] | None = None, *, commit: bool = False
    ) -> _Outcome:
        """Run one statement, its rows fetched, then commit if ``commit``: on the event loop
        if it cannot keep the loop waiting, else (or if it turns out it would) in one round
        trip to the thread."""
        await asyncio.sleep(0)  # let others run between statements, as a hand-over did
        conn = self._loop_connection()
        head = sql.lstrip()[:7].upper()
        if conn is not None and head.startswith(_LOOP_HEADS):
            ran = _on_loop(conn, sql, parameters, read=head.startswith("SELECT"))
            if ran is not None:
                if commit:
                    await self.commit()
                return ran
        if not commit:
            done: _Outcome = await self.in_thread(_execute, sql, parameters)
            return done
        outcome: _Outcome = await self.in_thread(_execute_then_commit, sql, parameters)
        self._committed()
        return outcome

    async def rows(self, sql: str, parameters: Sequence[Any]) -> list[_Row]:
        """The rows of one statement (see ``statement``)."""
        return (await self.statement(sql, parameters))[1]

    async def rollback(self) -> None:
        """Roll back, if a transaction is open: the pool rolls back every connection handed
        back, most of them after a commit (nothing to do then)."""
        if self._connection is None:
            return  # closed: nothing is open
        conn = self._loop_connection()
        if conn is None:
            await self.in_thread(sqlite3.Connection.rollback)
        elif conn.in_transaction:
            conn.rollback()
        if self._connection is not None:
            self._changes = self._connection.total_changes  # nothing of it reached the file

    async def commit(self) -> None:
        """Commit, if a transaction is open (reads alone open none on SQLite's driver)."""
        if self._connection is None:
            raise ValueError("Connection closed")
        conn = self._loop_connection()
        if conn is None:
            await self.in_thread(sqlite3.Connection.commit)
        elif conn.in_transaction:
            try:
                conn.commit()
            except sqlite3.OperationalError as exc:
                if not _waits(exc):
                    raise
                await self.in_thread(sqlite3.Connection.commit)
        self._committed()

    def _committed(self) -> None:
        """Tell the checkpointer how many rows this connection changed since the last time."""
        conn = self._connection
        if conn is None:
            return
        changed = conn.total_changes
        if self.checkpointer is not None and changed != self._changes:
            self.checkpointer.wrote(changed - self._changes)
        self._changes = changed

    def _loop_connection(self) -> sqlite3.Connection | None:
        """The sqlite3 connection, if the event loop may use it now: open, and the thread
        has nothing of this connection's to do (SQLAlchemy awaits every call, so nothing
        else uses it meanwhile)."""
        if self._handed != self._finished:
            return None
        return self._connection

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(sqlite3_connection, *args)`` on the connection's thread, waiting there up to
        ``busy_timeout_ms`` for another process's writer."""
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        self._handed += 1
        return await self._execute(_patiently, self, fn, args)  # type: ignore[no-untyped-call]


def _on_loop(conn: sqlite3.Connection, sql: str, parameters: Any, *, read: bool) -> _Outcome | None:
    """The statement run here (on the event loop), or None if it must run on the thread
    instead: a read past its budget (stopped, nothing changed) or any statement that found
    the database locked by another process (nothing done)."""
    if read:
        conn.set_progress_handler(_stop, READ_BUDGET_STEPS)
    try:
        return _execute(conn, sql, parameters)
    except sqlite3.OperationalError as exc:
        if _waits(exc) or (read and exc.sqlite_errorcode == _SQLITE_INTERRUPT):
            return None
        raise
    finally:
        if read:
            conn.set_progress_handler(None, 0)


def _patiently(connection: OneHopConnection, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """On the connection's thread: ``fn``, SQLite's busy handler waiting up to the busy
    timeout for another process's writer (the connection itself does not wait)."""
    try:
        conn = connection._conn
        timeout = connection.busy_timeout_ms
        if not timeout:
            return fn(conn, *args)
        conn.execute(f"PRAGMA busy_timeout={int(timeout)}")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("PRAGMA busy_timeout=0")
    finally:
        connection._finished += 1


#: How long a checkpoint waits for a lock it needs (another checkpoint, a WAL restart).
BUSY_WAIT_S = 5.0

#: Log length (frames, a page each) past which a checkpoint also finishes between two
#: writers, so that the next one starts the log over: 64 MiB of 4 KiB pages.
RESTART_FRAMES = 16_384

#: Before that, copies without the turn repeat (at most ``CATCH_UP_PASSES`` more) until one
#: finds at most this many frames come in since the one before.
CATCH_UP_FRAMES = 256
CATCH_UP_PASSES = 4


class Writers(Protocol):
    """The turns this process's writers take (``database.WriterLock``)."""

    async def acquire(self) -> None: ...

    def release(self) -> None: ...


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL on a thread of its own, off the commits, and keeps
    the log from growing without end.

    SQLite's connections checkpoint on their own (``wal_autocheckpoint``) in the commit that
    takes the log past 1,000 pages: that commit then copies the log into the database and
    syncs it, milliseconds in the middle of a unit of work, on the event loop now that
    commits run there. Whatsgate's connections do not (``wal_autocheckpoint=0``); each tells
    this how many rows it changed, and past ``every_rows`` (about SQLite's threshold: a
    changed row dirties a page or a few) a passive checkpoint runs on an executor thread,
    one at a time, while units of work go on. Another process on the same file keeps its own
    checkpoints.

    SQLite starts the log over only when a writer begins with all of it copied: under steady
    writes, each checkpoint ended with new commits behind it, and the log grew without end
    (240 MB after 3,000 messages of ``bench/live_ingest.py``, its commits slower for it).
    So once the log is past ``restart_frames``, the checkpoint copies again what came
    meanwhile until little did (``CATCH_UP_FRAMES``), then once more with the ``writers``
    turn held (a few milliseconds, the syncs mostly), and the writer after it starts the log
    over.
    """

    def __init__(
        self,
        database: str,
        every_rows: int = 1_000,
        *,
        writers: Writers | None = None,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        self.database = database
        self.every_rows = every_rows
        self.writers = writers
        self.restart_frames = restart_frames
        self.checkpoints = 0
        #: Checkpoints that ended between two writers (the log then starts over).
        self.catch_ups = 0
        self._rows = 0
        self._running: asyncio.Future[None] | None = None

    def wrote(self, rows: int) -> None:
        self._rows += rows
        if self._rows < self.every_rows:
            return
        if self._running is not None and not self._running.done():
            return
        self._rows = 0
        self._running = asyncio.ensure_future(self._run())
        self._running.add_done_callback(_checkpointed)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        log = await loop.run_in_executor(None, self._checkpoint)
        if self.writers is None or log is None or log[0] < self.restart_frames:
            return
        # Copy again what came in meanwhile, without the turn, until little came in: the
        # copy with the turn held then has little left, and holds writers up for its syncs.
        for _ in range(CATCH_UP_PASSES):
            copied = log[1]
            log = await loop.run_in_executor(None, self._checkpoint)
            if log is None or log[0] < self.restart_frames:
                return  # gone, or started over by a writer that found it all copied
            if log[1] - copied <= CATCH_UP_FRAMES:
                break
        await self.writers.acquire()
        try:
            await loop.run_in_executor(None, self._checkpoint)
        finally:
            self.writers.release()
        self.catch_ups += 1

    def _checkpoint(self) -> tuple[int, int] | None:
        """A passive checkpoint: the log's length and how much of it is copied, in frames;
        None if the file is gone."""
        # Waiting here holds up no unit of work: this is an executor thread. ``mode=rw``:
        # never create the file (it may have been removed since the commit).
        try:
            conn = sqlite3.connect(
                f"file:{pathname2url(self.database)}?mode=rw", uri=True, timeout=BUSY_WAIT_S
            )
            try:
                _busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            if not os.path.exists(self.database):
                return None  # removed meanwhile (a finished test or benchmark): nothing to do
            raise
        self.checkpoints += 1
        return int(log), int(copied)

    async def wait(self) -> None:
        """Until the checkpoint running (if any) is done, however it ends (a failure is
        logged, see ``_checkpointed``)."""
        running = self._running
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            return
        await asyncio.wait([running])


def _checkpointed(future: asyncio.Future[None]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:  # busy with another process's checkpoint, or gone: the next one will do
        log.warning("WAL checkpoint failed: %s", exc)
