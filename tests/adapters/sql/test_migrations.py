"""The migrations build exactly the mapped schema, on both databases, and the CLI runs them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.databases import (
    PostgresSchema,
    drop_schema,
    new_schema_or_skip,
    postgres_url_or_skip,
    sqlite_file_url,
)
from whatsgate.adapters.sql import tables
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.migrations import alembic_config, migrate
from whatsgate.entrypoints.cli import main

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, tables.metadata))


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _assert_migrated_equals_mapped(engine: AsyncEngine) -> None:
    await migrate(engine)
    await migrate(engine)  # a second run is a no-op
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
        assert await connection.run_sync(_revision) == HEAD
        names = await connection.run_sync(_table_names)
    assert names == set(tables.metadata.tables) | {"alembic_version"}


async def test_sqlite_migrated_schema_has_no_drift(tmp_path: Path) -> None:
    engine = create_engine_for(sqlite_file_url(tmp_path / "drift.db"))
    try:
        await _assert_migrated_equals_mapped(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def empty_postgres_schema() -> Iterator[PostgresSchema]:
    where = new_schema_or_skip(postgres_url_or_skip(), migrated=False)
    try:
        yield where
    finally:
        drop_schema(where)


@pytest.mark.postgres
async def test_postgres_migrated_schema_has_no_drift(
    empty_postgres_schema: PostgresSchema,
) -> None:
    engine = empty_postgres_schema.engine()
    try:
        await _assert_migrated_equals_mapped(engine)
    finally:
        await engine.dispose()


def _sqlite_revision(path: Path) -> str:
    with sqlite3.connect(path) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


def test_cli_migrate_creates_the_database_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WHATSGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("WHATSGATE_DATA_DIR", raising=False)
    data_dir = tmp_path / "nested" / "data"
    assert main(["migrate", "--data-dir", str(data_dir)]) == 0
    assert _sqlite_revision(data_dir / "whatsgate.db") == HEAD
    assert "up to date" in capsys.readouterr().out


def test_cli_migrate_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHATSGATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("WHATSGATE_DATA_DIR", str(tmp_path / "from-env"))
    assert main(["migrate"]) == 0
    assert _sqlite_revision(tmp_path / "from-env" / "whatsgate.db") == HEAD

    target = tmp_path / "by-url.db"
    monkeypatch.setenv("WHATSGATE_DATABASE_URL", f"sqlite:///{target}")
    assert main(["migrate", "--data-dir", str(tmp_path / "ignored")]) == 0
    assert _sqlite_revision(target) == HEAD
    assert not (tmp_path / "ignored").exists()


def test_cli_defaults_to_whatsgate_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHATSGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("WHATSGATE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["migrate"]) == 0
    assert _sqlite_revision(tmp_path / "whatsgate-data" / "whatsgate.db") == HEAD
