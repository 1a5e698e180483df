"""aiosqlite with one thread round trip per statement.

SQLAlchemy's aiosqlite adapter makes four round trips to the connection's thread for every
statement (make a cursor, execute, fetch the rows, close the cursor), each a hand-over of the
GIL between the event loop and that thread. On a busy machine each hand-over waits for the
scheduler: most of a unit of work's time was spent there (bench/ingest_socketio.py). Here the
cursor runs the statement, fetches its rows and closes in one call on the thread; fetching
and closing are then answered from memory. Results are always buffered, as SQLAlchemy's
adapter buffers them anyway (no server-side cursors).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, Self

import aiosqlite

_Row = tuple[Any, ...]


class OneHopCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy uses, one round trip per statement."""

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
        connection = self._connection
        run = _execute
        if connection.commit_next:
            connection.commit_next = False
            run = _execute_then_commit
        outcome = await connection.run(run, sql, parameters)
        self.description, self._rows, self.rowcount, self.lastrowid = outcome
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Self:
        outcome = await self._connection.run(_executemany, sql, parameters)
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


def _execute_then_commit(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    outcome = _execute(connection, sql, parameters)
    connection.commit()
    return outcome


def _executemany(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return _outcome(cursor)
    finally:
        cursor.close()


class OneHopConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose cursors take one round trip per statement."""

    @classmethod
    def open(cls, database: str, **kwargs: Any) -> OneHopConnection:
        """As ``aiosqlite.connect``: await the result to open it."""
        connection = cls(partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does: never hold the process open
        return connection

    #: Set by ``commit_with_next_statement``.
    commit_next = False

    def commit_with_next_statement(self) -> None:
        """The next statement (``execute``) commits too, in the same round trip, if it
        succeeds: the unit of work's last write and its commit go together (the
        connection's own ``commit`` then finds nothing to do)."""
        self.commit_next = True

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def rollback(self) -> None:
        """Roll back, if a transaction is open: the pool rolls back every connection handed
        back, most of them after a commit (nothing to roll back, no round trip then)."""
        if self._idle():
            return
        await super().rollback()

    async def commit(self) -> None:
        """Commit, if a transaction is open (reads alone open none on SQLite's driver)."""
        if self._idle():
            return
        await super().commit()

    def _idle(self) -> bool:
        # Only read between statements: SQLAlchemy awaits each call, so the connection's
        # thread is not using the sqlite3 connection now.
        connection = self._connection
        return connection is not None and not connection.in_transaction

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(sqlite3_connection, *args)`` on the connection's thread."""
        return await self._execute(_call, self, fn, args)  # type: ignore[no-untyped-call]


def _call(connection: OneHopConnection, fn: Any, args: tuple[Any, ...]) -> Any:
    return fn(connection._conn, *args)
