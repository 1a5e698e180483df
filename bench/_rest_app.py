"""whatsgate's own server for the REST benchmark: seed a data directory, then serve it.

``python -m bench._rest_app seed --dir D --messages M --conversations C`` bootstraps the default
organization with a known admin key, adds one paired session (not running: sends queue) and
bulk-loads C conversations of M/C messages each, each with its contact (rows built from real
domain objects, written through the SQL adapter's tables). ``python -m bench._rest_app serve
--dir D --port P`` runs ``whatsgate serve`` (sandbox engine) on it and prints ``READY <json>``.
``--database-url U`` (both actions) puts the database there, on PostgreSQL, instead of
``D/whatsgate.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench._fixtures import now, sqlite_url

ADMIN_KEY = "wg-bench-admin-key-0123456789abcdef"
INFO_FILE = "bench-info.json"


async def _bootstrap(directory: Path, database_url: str | None) -> dict[str, str]:
    from whatsgate.adapters.clock import SystemClock
    from whatsgate.adapters.sql.database import create_engine_for
    from whatsgate.adapters.sql.migrations import migrate
    from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
    from whatsgate.domain.jid import Jid
    from whatsgate.domain.session import Session
    from whatsgate.usecases.auth import Bootstrap, BootstrapCommand

    url = database_url or sqlite_url(directory / "whatsgate.db")
    await migrate(url)
    engine = create_engine_for(url)
    try:
        uow = SqlUnitOfWorkFactory(engine)
        boot = await Bootstrap(uow, SystemClock())(BootstrapCommand(admin_api_key=ADMIN_KEY))
        at = now()
        session = Session(
            organization_id=boot.organization.id,
            owner_id=boot.admin.id,
            name="bench",
            created_at=at,
            jid=Jid.parse("5511999990001@s.whatsapp.net"),
            paired_at=at,
        )
        async with uow() as unit:
            await unit.sessions.add(session)
            await unit.commit()
    finally:
        await engine.dispose()
    return {"organization_id": boot.organization.id, "session_id": session.id}


_Rows = list[dict[str, Any]]


def _batches(
    ids: dict[str, str], messages: int, conversations: int
) -> Iterator[tuple[_Rows, _Rows, _Rows]]:
    """The contact, conversation and message rows to load, about 5,000 messages at a time:
    each conversation is a direct chat, with its contact (as ingest leaves them)."""
    from whatsgate.adapters.sql import mapping
    from whatsgate.domain.conversation import Contact, Conversation
    from whatsgate.domain.ids import new_id
    from whatsgate.domain.jid import Jid
    from whatsgate.domain.message import Direction, Message, MessageKind, MessageStatus

    per = max(1, messages // conversations)
    start = now() - timedelta(days=20)
    org, sid = ids["organization_id"], ids["session_id"]
    contact_rows: _Rows = []
    conv_rows: _Rows = []
    msg_rows: _Rows = []

    for c in range(conversations):
        chat = Jid.parse(f"55119{c:08d}@s.whatsapp.net")
        contact = Contact(
            organization_id=org,
            session_id=sid,
            jid=chat,
            push_name=f"Contact {c}",
            created_at=start,
            updated_at=start,
        )
        contact_rows.append(mapping.contact_row(contact))
        conversation = Conversation(
            organization_id=org,
            session_id=sid,
            chat=chat,
            name=f"Contact {c}",
            created_at=start,
            updated_at=start,
        )
        template = mapping.message_row(
            Message(
                organization_id=org,
                session_id=sid,
                conversation_id=conversation.id,
                wa_id="x",
                chat=chat,
                sender=chat,
                push_name=f"Contact {c}",
                direction=Direction.IN,
                kind=MessageKind.TEXT,
                text="",
                timestamp=start,
                status=MessageStatus.RECEIVED,
                created_at=start,
            )
        )
        last: Message | None = None
        for m in range(per):
            at = start + timedelta(seconds=(c * per + m) * 1.5)
            row = dict(template)
            row.update(
                id=new_id(),
                wa_id=f"3EB0{c:08X}{m:08X}",
                text=f"message {m} of conversation {c}: hello, is this still available?",
                timestamp=at,
                created_at=at,
            )
            msg_rows.append(row)
            if m == per - 1:
                last = Message(
                    id=row["id"],
                    organization_id=org,
                    session_id=sid,
                    conversation_id=conversation.id,
                    wa_id=row["wa_id"],
                    chat=chat,
                    sender=chat,
                    direction=Direction.IN,
                    kind=MessageKind.TEXT,
                    text=row["text"],
                    timestamp=at,
                    status=MessageStatus.RECEIVED,
                    created_at=at,
                )
        if last is not None:
            conversation.register_message(last, last.timestamp)
        conv_rows.append(mapping.conversation_row(conversation))
        if len(msg_rows) >= 5_000:
            yield contact_rows, conv_rows, msg_rows
            contact_rows, conv_rows, msg_rows = [], [], []
    if conv_rows or msg_rows:
        yield contact_rows, conv_rows, msg_rows


def _load(directory: Path, ids: dict[str, str], messages: int, conversations: int) -> None:
    """Bulk rows through SQLAlchemy Core (sync), 5,000 per transaction."""
    from sqlalchemy import create_engine

    from whatsgate.adapters.sql import tables

    engine = create_engine(f"sqlite:///{directory / 'whatsgate.db'}")
    for contact_rows, conv_rows, msg_rows in _batches(ids, messages, conversations):
        with engine.begin() as conn:
            if contact_rows:
                conn.execute(tables.contacts.insert(), contact_rows)
            if conv_rows:
                conn.execute(tables.conversations.insert(), conv_rows)
            if msg_rows:
                conn.execute(tables.messages.insert(), msg_rows)
    engine.dispose()


async def _load_postgres(
    database_url: str, ids: dict[str, str], messages: int, conversations: int
) -> None:
    """The same rows on PostgreSQL through SQLAlchemy Core on asyncpg (multi-row INSERTs),
    5,000 per transaction, then ANALYZE (as autovacuum would after such a load)."""
    from sqlalchemy import text

    from whatsgate.adapters.sql import tables
    from whatsgate.adapters.sql.database import create_engine_for

    engine = create_engine_for(database_url)
    try:
        for contact_rows, conv_rows, msg_rows in _batches(ids, messages, conversations):
            async with engine.begin() as conn:
                if contact_rows:
                    await conn.execute(tables.contacts.insert(), contact_rows)
                if conv_rows:
                    await conn.execute(tables.conversations.insert(), conv_rows)
                if msg_rows:
                    await conn.execute(tables.messages.insert(), msg_rows)
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


def seed(
    directory: Path, messages: int, conversations: int, database_url: str | None = None
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ids = asyncio.run(_bootstrap(directory, database_url))
    if database_url is None:
        _load(directory, ids, messages, conversations)
    else:
        asyncio.run(_load_postgres(database_url, ids, messages, conversations))
    ids["token"] = ADMIN_KEY
    (directory / INFO_FILE).write_text(json.dumps(ids))
    print(f"seeded {messages} messages in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def serve(directory: Path, port: int, database_url: str | None = None) -> None:
    """``whatsgate serve`` on the seeded directory (sandbox engine, warnings only)."""
    if database_url is not None:
        os.environ["WHATSGATE_DATABASE_URL"] = database_url
    os.environ.update(
        WHATSGATE_DATA_DIR=str(directory),
        WHATSGATE_ADMIN_API_KEY=ADMIN_KEY,
        WHATSGATE_ENGINE="sandbox",
        WHATSGATE_LOG_LEVEL="warning",
        WHATSGATE_PORT=str(port),
        WHATSGATE_HOST="127.0.0.1",
    )
    print("READY " + (directory / INFO_FILE).read_text(), flush=True)
    from whatsgate.entrypoints.cli import main

    sys.exit(main(["serve"]))


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["seed", "serve"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if args.action == "seed":
        seed(args.dir, args.messages, args.conversations, args.database_url)
    else:
        serve(args.dir, args.port, args.database_url)


if __name__ == "__main__":
    _main()
