"""The unit of work on SQL: one connection and one transaction per ``async with``.

Leaving the block without ``await uow.commit()`` rolls back everything it wrote. Staged domain
events are written by ``commit``, in the same transaction as the change that caused them; then
``on_commit`` (if any) is given them as stored, ids assigned: it wakes whoever hands the log to
socket.io and webhooks, which then need not read back what it was just told.

The connection is the one the unit of work before handed back to the engine's ``Admission``
when it kept one, else one checked out of the pool (see ``database.Admission``); it goes back
rolled back.

On SQLite the transaction begins at the first write statement (the driver's deferred
``BEGIN``; reads before it see the last commit and hold no lock). Just before that statement
the unit of work takes the database's ``WriterLock`` and holds it to commit or rollback, so the
process's writers queue in order instead of polling SQLite's lock.

On PostgreSQL likewise: the connection runs in autocommit until the first write statement or
``begin_write``, and the transaction begins there. A unit of work that only reads (most
requests) sends no ``BEGIN`` and no ``ROLLBACK``: two round trips, ~11 % of a PostgreSQL GET
…/conversations in a py-spy profile. Its reads see the last commit, each statement its own,
as they did under READ COMMITTED.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from whatsgate.adapters.sql.database import admission, writer_lock
from whatsgate.adapters.sql.onehop import OneHopConnection
from whatsgate.adapters.sql.repositories import (
    SqlApiKeys,
    SqlContacts,
    SqlConversations,
    SqlEventLog,
    SqlMessages,
    SqlOrganizations,
    SqlOutbox,
    SqlSessions,
    SqlUsers,
    SqlWebhooks,
    one_hop_driver,
)
from whatsgate.ports.repositories import CommitListener, UnitOfWork, UnitOfWorkFactory


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, engine: AsyncEngine, on_commit: CommitListener | None = None) -> None:
        self.engine = engine
        self.on_commit = on_commit
        self._connection: AsyncConnection | None = None
        self._writer = writer_lock(engine)
        self._admission = admission(engine)
        self._writing = False
        #: ``Admission.generation`` when the connection was taken.
        self._generation = 0
        #: PostgreSQL, after ``begin_write``: reads of rows to change lock them (``FOR UPDATE``).
        self.locking = False
        #: SQLite's driver connection, which prepared writes reach without SQLAlchemy.
        self._driver: OneHopConnection | None = None
        #: PostgreSQL's driver connection (SQLAlchemy's asyncpg adapter), in autocommit until
        #: the first write.
        self._postgres: Any = None
        self.organizations = SqlOrganizations(self)
        self.users = SqlUsers(self)
        self.api_keys = SqlApiKeys(self)
        self.sessions = SqlSessions(self)
        self.contacts = SqlContacts(self)
        self.conversations = SqlConversations(self)
        self.messages = SqlMessages(self)
        self.outbox = SqlOutbox(self)
        self.webhooks = SqlWebhooks(self)
        self.events = SqlEventLog(self)

    @property
    def connection(self) -> AsyncConnection:
        """The repositories' connection. Commit and roll back through the unit of work, not
        through this: on SQLite the prepared writes reach the driver without SQLAlchemy,
        which then may not know a transaction is open."""
        if self._connection is None:
            raise RuntimeError("Use the unit of work inside `async with uow:`.")
        return self._connection

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("This unit of work is already open.")
        self.events.staged.clear()
        if self._admission is not None:
            await self._admission.acquire()
        try:
            kept = None
            if self._admission is not None:
                self._generation = self._admission.generation
                kept = await self._admission.take()
            self._connection = kept or await self.engine.connect()
        except BaseException:
            if self._admission is not None:
                self._admission.release()
            raise
        self._driver = one_hop_driver(self._connection)
        if self._writer is None and self._connection.dialect.driver == "asyncpg":
            self._postgres = (await self._connection.get_raw_connection()).dbapi_connection
            self._postgres.autocommit = True
        return self

    async def before_write(self) -> None:
        """Called by the repositories before each write statement: on SQLite, the first one
        waits for the process's other writers (``WriterLock``); on PostgreSQL the transaction
        begins with it (``before_locking_read``)."""
        if self._writer is not None and not self._writing:
            await self._writer.acquire()
            self._writing = True
        else:
            self.before_locking_read()

    def before_locking_read(self) -> None:
        """Called by the repositories before a read that locks the rows it returns (a claim
        with ``SKIP LOCKED``, a read ``FOR UPDATE``): on PostgreSQL the transaction begins
        with it (the next statement), so the locks last until the unit of work ends; on
        SQLite nothing (its writers take turns)."""
        if self._postgres is not None and self._postgres.autocommit:
            self._postgres.autocommit = False

    async def begin_write(self) -> None:
        """On SQLite: wait for the process's other writers, then begin the transaction
        (``BEGIN IMMEDIATE``), so that the reads that follow share it with the writes: one
        snapshot, and one read lock instead of one per statement (a one-message unit of
        work of ingest ran ~20 % less SQLite time, bench/live_ingest.py).

        On PostgreSQL, whose writers take no turns: from here the repositories read the
        contacts, conversations and messages they return with ``FOR UPDATE``, so another
        unit of work that reads them to change them waits for this one's commit. Units of
        work lock contacts, then conversations, then messages (each batch in id order), so
        they do not wait for each other in a circle; where one does anyway, PostgreSQL ends
        it (``WriteConflict``) and its use case runs again."""
        if self._writer is None:
            self.locking = True
            await self.before_write()  # its locks last to the end of a transaction
            return
        await self.before_write()
        driver = self._driver
        if driver is not None and not driver.in_transaction:
            await driver.statement("BEGIN IMMEDIATE")

    def _end_write(self) -> None:
        if self._writing:
            self._writing = False
            if self._writer is not None:
                self._writer.release()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self.connection
        rolled_back = False
        try:
            await self.rollback()
            rolled_back = True
        finally:
            if self._postgres is not None:
                self._postgres.autocommit = False  # as the pool's other users expect it
            self._connection = self._driver = self._postgres = None
            self.locking = False
            try:
                if rolled_back and self._admission is not None:
                    await self._admission.hand_back(connection, self._generation)
                else:
                    await connection.close()
            finally:
                if self._admission is not None:
                    self._admission.release()

    async def commit(self) -> None:
        # On SQLite the events' insert commits too, in the same call to the driver; these
        # commits then end SQLAlchemy's transaction and the driver's, if still open (the
        # prepared writes go to the driver without SQLAlchemy: ``_driver_write``).
        stored = await self.events.write_staged(commit=True)
        if self.connection.in_transaction():
            await self.connection.commit()
        if self._driver is not None:
            await self._driver.commit()
        self._end_write()  # on failure, the rollback that follows gives it back
        if stored and self.on_commit is not None:
            self.on_commit(stored)

    async def rollback(self) -> None:
        self.events.staged.clear()
        try:
            if self.connection.in_transaction():  # else nothing to roll back (reads only)
                await self.connection.rollback()
            if self._driver is not None:  # before the next writer goes: nothing if idle
                await self._driver.rollback()
        finally:
            self._end_write()


class SqlUnitOfWorkFactory(UnitOfWorkFactory):
    """Makes units of work on one engine; ``on_commit`` is handed to each."""

    def __init__(self, engine: AsyncEngine, on_commit: CommitListener | None = None) -> None:
        self.engine = engine
        self.on_commit = on_commit

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.on_commit)
