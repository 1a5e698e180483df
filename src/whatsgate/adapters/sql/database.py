"""Engines for the two databases whatsgate runs on.

SQLite (through aiosqlite) is the default: one file in the data directory, WAL journal so
readers never wait for the writer, foreign keys on, a busy timeout instead of instant "database
is locked" errors, ``synchronous=NORMAL`` (safe with WAL). PostgreSQL (through asyncpg) when the
URL says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 5_000

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
)


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


def create_engine_for(url: str, **kwargs: Any) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``; SQLite connections get whatsgate's pragmas and the
    parent directory of the file is created if missing."""
    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _apply_sqlite_pragmas)
    return engine


def _apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
    dbapi_connection.create_function("wg_casefold", 1, _casefold, deterministic=True)


def _casefold(value: object) -> str | None:
    """SQLite's ``lower()`` folds ASCII only; search folds every script, as PostgreSQL does."""
    return None if value is None else str(value).casefold()
