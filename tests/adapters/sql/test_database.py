"""Engines: the SQLite pragmas, the default URL, the async drivers."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import text

from whatsgate.adapters.sql.database import (
    BUSY_TIMEOUT_MS,
    SQLITE_POOL_SIZE,
    async_url,
    create_engine_for,
    sqlite_url,
)
from whatsgate.adapters.sql.onehop import OneHopConnection


async def test_sqlite_connections_get_wal_foreign_keys_normal_sync_and_no_waiting_on_the_loop(
    tmp_path: Path,
) -> None:
    engine = create_engine_for(sqlite_url(tmp_path / "data"))
    try:
        async with engine.connect() as connection:

            async def pragma(name: str) -> object:
                return (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()

            assert await pragma("journal_mode") == "wal"
            assert await pragma("foreign_keys") == 1
            # The connection does not wait for a lock (statements run on the event loop);
            # its thread waits up to BUSY_TIMEOUT_MS for another process's writer.
            assert await pragma("busy_timeout") == 0
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, OneHopConnection)
            assert raw.busy_timeout_ms == BUSY_TIMEOUT_MS
            assert await pragma("synchronous") == 1  # NORMAL
            assert await pragma("wal_autocheckpoint") == 0  # WalCheckpointer does it
            folded = await connection.execute(text("SELECT wg_casefold('ÓTICA ß')"))
            assert folded.scalar_one() == "ótica ss"
    finally:
        await engine.dispose()
    assert (tmp_path / "data" / "whatsgate.db").exists()


async def test_sqlite_keeps_its_connections_open_when_many_are_in_use(tmp_path: Path) -> None:
    """Connections handed back are kept (not closed and opened again per request), and at
    most ``SQLITE_POOL_SIZE`` are in use at once."""
    engine = create_engine_for(sqlite_url(tmp_path))
    pool = engine.sync_engine.pool
    try:
        async with AsyncExitStack() as stack:
            for _ in range(SQLITE_POOL_SIZE):
                await stack.enter_async_context(engine.connect())
            assert pool.checkedout() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
            waiting = asyncio.ensure_future(engine.connect().start())
            await asyncio.sleep(0.05)
            assert not waiting.done()  # the next one waits for a connection handed back
            waiting.cancel()
        assert pool.checkedin() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def test_default_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/whatsgate.db"


def test_urls_get_the_async_drivers() -> None:
    assert async_url("postgresql://u:p%40ss@db:5432/wg") == (
        "postgresql+asyncpg://u:p%40ss@db:5432/wg"
    )
    assert async_url("postgres://db/wg") == "postgresql+asyncpg://db/wg"
    assert async_url("postgresql+asyncpg://db/wg") == "postgresql+asyncpg://db/wg"
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
