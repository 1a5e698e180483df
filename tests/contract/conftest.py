"""Every contract test runs on each implementation of the ports: memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.databases import PostgresSchema, copy_sqlite, empty_postgres
from whatsgate.adapters.memory import MemoryStore, MemoryUnitOfWork
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.ports.repositories import CommitListener, UnitOfWork, UnitOfWorkFactory

OnCommit = CommitListener


class Backend:
    """One implementation under test: ``uow()`` opens a unit of work on shared storage."""

    def __init__(self, name: str, make: Callable[[OnCommit | None], UnitOfWorkFactory]) -> None:
        self.name = name
        self._make = make
        self._default = make(None)

    def uow(self) -> UnitOfWork:
        return self._default()

    def factory(self, on_commit: OnCommit | None = None) -> UnitOfWorkFactory:
        return self._make(on_commit)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        store = MemoryStore()

        def memory(on_commit: OnCommit | None) -> UnitOfWorkFactory:
            return lambda: MemoryUnitOfWork(store, on_commit)

        yield Backend("memory", memory)
    elif request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        engine = create_engine_for(copy_sqlite(template, tmp_path))
        try:
            yield Backend("sqlite", lambda on_commit: SqlUnitOfWorkFactory(engine, on_commit))
        finally:
            await engine.dispose()
    else:
        where: PostgresSchema = request.getfixturevalue("postgres_schema")
        async with empty_postgres(where) as engine:
            yield Backend("postgres", lambda on_commit: SqlUnitOfWorkFactory(engine, on_commit))
