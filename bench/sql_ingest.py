"""How fast messages go into the database through the SQL adapter.

    python bench/sql_ingest.py                      # SQLite in a temporary directory
    python bench/sql_ingest.py --url postgresql://postgres@127.0.0.1:5432/test --schema bench

Measures the history-import path (``add_new`` of 500-message chunks, one unit of work each),
the same chunks again (every row a conflict: the idempotent re-import), and one message per
unit of work (the slowest possible live ingest, for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from whatsgate.adapters.sql import SqlUnitOfWorkFactory, create_engine_for, migrate, sqlite_url
from whatsgate.domain.conversation import Conversation
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Direction, Message, MessageKind, MessageStatus
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.session import Session

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def timed(label: str, rows: int, run: Callable[[], Awaitable[None]]) -> None:
    started = time.perf_counter()
    await run()
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {rows:>7} rows {elapsed:7.2f} s {rows / elapsed:>10,.0f} rows/s")


async def main(url: str, schema: str | None, total: int, chunk: int, single: int) -> None:
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    if schema:
        admin = create_engine_for(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await admin.dispose()
    engine = create_engine_for(url, connect_args=connect_args)
    await migrate(engine)
    make = SqlUnitOfWorkFactory(engine)

    org = Organization(name="Bench", created_at=T0)
    user = User(organization_id=org.id, name="Admin", role=Role.ADMIN, created_at=T0)
    session = Session(organization_id=org.id, owner_id=user.id, name="bench", created_at=T0)
    chat = Jid.phone("+5566996285154")
    conv = Conversation(
        organization_id=org.id, session_id=session.id, chat=chat, created_at=T0, updated_at=T0
    )
    async with make() as uow:
        await uow.organizations.add(org)
        await uow.users.add(user)
        await uow.sessions.add(session)
        await uow.conversations.save(conv)
        await uow.commit()

    def msg(n: int) -> Message:
        at = T0 + timedelta(seconds=n)
        return Message(
            organization_id=org.id,
            session_id=session.id,
            conversation_id=conv.id,
            wa_id=f"3EB0{n:012d}",
            chat=chat,
            sender=chat,
            direction=Direction.IN,
            kind=MessageKind.TEXT,
            text=f"message number {n}",
            timestamp=at,
            status=MessageStatus.RECEIVED,
            created_at=at,
        )

    history = [msg(n) for n in range(total)]
    chunks = [history[i : i + chunk] for i in range(0, total, chunk)]

    async def import_chunks() -> None:
        for part in chunks:
            async with make() as uow:
                await uow.messages.add_new(part)
                await uow.commit()

    async def one_per_unit() -> None:
        for n in range(total, total + single):
            async with make() as uow:
                await uow.messages.add_new([msg(n)])
                await uow.commit()

    print(f"{engine.url.render_as_string(hide_password=True)}")
    await timed(f"history import, add_new x {chunk} per commit", total, import_chunks)
    await timed("the same again (all duplicates, skipped)", total, import_chunks)
    await timed("one message per unit of work", single, one_per_unit)
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: SQLite in a temporary dir)")
    parser.add_argument("--schema", help="PostgreSQL schema to (re)create and use")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--single", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or sqlite_url(Path(tmp))
        asyncio.run(main(url, args.schema, args.messages, args.chunk, args.single))
