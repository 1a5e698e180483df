"""Alembic migrations for the whole schema, shipped in the package so an installed wheel can
migrate: ``await migrate(url)`` (or ``whatsgate migrate``) brings a database to the newest
revision. No ``alembic.ini`` is needed; the configuration is made here.

A new revision, after changing ``tables.py``::

    python -c "from whatsgate.adapters.sql.migrations import revision; revision('add x')"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from whatsgate.adapters.sql.database import create_engine_for

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("version_path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(target: str | AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database at ``target`` (a URL or an engine) to ``revision``."""
    engine = create_engine_for(target) if isinstance(target, str) else target
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, revision)
    finally:
        if isinstance(target, str):
            await engine.dispose()


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def revision(message: str, url: str = "sqlite+aiosqlite:///./whatsgate-dev.db", **kw: Any) -> None:
    """Autogenerate a revision against the database at ``url`` (migrated to head first)."""
    import asyncio

    asyncio.run(migrate(url))
    command.revision(alembic_config(url=url), message=message, autogenerate=True, **kw)
