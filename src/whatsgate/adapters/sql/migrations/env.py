"""Alembic's environment: migrates on the connection ``migrate()`` hands over, or (for the
``revision`` helper) on the URL in the configuration, through the async driver."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.tables import metadata
from whatsgate.adapters.sql.types import JidType, UtcDateTime

config = context.config


def _render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Revisions use plain SQLAlchemy types, never our decorators, so that an old revision
    keeps working whatever becomes of ``types.py``."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(item, JidType):
        return "sa.String(length=128)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite alters tables by copying them
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = create_engine_for(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    asyncio.run(_run_on_url(config.get_main_option("sqlalchemy.url") or ""))
