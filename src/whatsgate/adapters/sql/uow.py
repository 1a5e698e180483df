"""The unit of work on SQL: one connection and one transaction per ``async with``.

Leaving the block without ``await uow.commit()`` rolls back everything it wrote. Staged domain
events are written by ``commit``, in the same transaction as the change that caused them; then
``on_commit`` (if any) wakes whoever hands the log to socket.io and webhooks.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
)
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, engine: AsyncEngine, on_commit: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_commit = on_commit
        self._connection: AsyncConnection | None = None
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
        if self._connection is None:
            raise RuntimeError("Use the unit of work inside `async with uow:`.")
        return self._connection

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("This unit of work is already open.")
        self.events.staged.clear()
        self._connection = await self.engine.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self.connection
        try:
            await self.rollback()
        finally:
            self._connection = None
            await connection.close()

    async def commit(self) -> None:
        wrote_events = await self.events.write_staged()
        await self.connection.commit()
        if wrote_events and self.on_commit is not None:
            self.on_commit()

    async def rollback(self) -> None:
        self.events.staged.clear()
        await self.connection.rollback()


class SqlUnitOfWorkFactory(UnitOfWorkFactory):
    """Makes units of work on one engine; ``on_commit`` is handed to each."""

    def __init__(self, engine: AsyncEngine, on_commit: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_commit = on_commit

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.on_commit)
