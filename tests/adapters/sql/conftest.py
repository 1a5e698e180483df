"""SQL engines for adapter tests: a migrated SQLite file per test, and the run's PostgreSQL
schema (emptied per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.databases import PostgresSchema, copy_sqlite, empty_postgres
from whatsgate.adapters.sql.database import create_engine_for


@pytest.fixture
async def postgres_engine(postgres_schema: PostgresSchema) -> AsyncIterator[AsyncEngine]:
    async with empty_postgres(postgres_schema) as engine:
        yield engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """Each database in turn."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        sqlite = create_engine_for(copy_sqlite(template, tmp_path))
        try:
            yield sqlite
        finally:
            await sqlite.dispose()
    else:
        where: PostgresSchema = request.getfixturevalue("postgres_schema")
        async with empty_postgres(where) as postgres:
            yield postgres
