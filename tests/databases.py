"""The databases tests run on: a migrated SQLite file per test, copied from one migrated once,
and PostgreSQL in a schema of its own per test run (dropped at the end), emptied per test.

PostgreSQL is reached through ``WHATSGATE_TEST_POSTGRES_URL``; without it, or when the server
does not answer, the tests that need it skip and say why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from whatsgate.adapters.sql import tables
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.migrations import migrate

POSTGRES_ENV = "WHATSGATE_TEST_POSTGRES_URL"
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class PostgresSchema:
    url: str
    schema: str

    def engine(self, **kwargs: Any) -> AsyncEngine:
        return create_engine_for(
            self.url,
            connect_args={
                # Tests need no durability: commits need not wait for the disk.
                "server_settings": {"search_path": self.schema, "synchronous_commit": "off"},
                "timeout": CONNECT_TIMEOUT,
            },
            **kwargs,
        )


def run_apart(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on a loop of its own, in a thread of its own: session
    fixtures set databases up while a test's event loop may already be running."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def sqlite_file_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "whatsgate.db"
    run_apart(lambda: migrate(sqlite_file_url(path)))
    return path


def copy_sqlite(template: Path, directory: Path) -> str:
    target = directory / "whatsgate.db"
    shutil.copyfile(template, target)
    return sqlite_file_url(target)


async def _admin(url: str, *statements: str) -> None:
    engine = create_engine_for(url, connect_args={"timeout": CONNECT_TIMEOUT})
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _create_and_migrate(where: PostgresSchema) -> None:
    await _admin(where.url, f'CREATE SCHEMA "{where.schema}"')
    engine = where.engine()
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def postgres_url_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests skipped")
    return url


def new_schema_or_skip(url: str, *, migrated: bool = True) -> PostgresSchema:
    """A new schema (migrated, unless told); skips when the server does not answer. Errors
    after the server answered (a broken migration) fail, they never skip."""
    try:
        run_apart(lambda: asyncio.wait_for(_admin(url, "SELECT 1"), CONNECT_TIMEOUT * 2))
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} does not answer ({exc!r}): tests skipped")
    where = PostgresSchema(url, f"wg_test_{uuid.uuid4().hex[:12]}")
    if migrated:
        run_apart(lambda: _create_and_migrate(where))
    else:
        run_apart(lambda: _admin(url, f'CREATE SCHEMA "{where.schema}"'))
    return where


def drop_schema(where: PostgresSchema) -> None:
    run_apart(lambda: _admin(where.url, f'DROP SCHEMA IF EXISTS "{where.schema}" CASCADE'))


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[PostgresSchema]:
    """A migrated schema of its own for this test run; dropped at the end."""
    where = new_schema_or_skip(postgres_url_or_skip())
    try:
        yield where
    finally:
        drop_schema(where)


@asynccontextmanager
async def empty_postgres(where: PostgresSchema) -> AsyncIterator[AsyncEngine]:
    """An engine on the run's schema, every table emptied (DELETE: far quicker than TRUNCATE
    on tables this small)."""
    engine = where.engine()
    try:
        async with engine.begin() as connection:
            for table in reversed(tables.metadata.sorted_tables):
                await connection.execute(table.delete())
        yield engine
    finally:
        await engine.dispose()
