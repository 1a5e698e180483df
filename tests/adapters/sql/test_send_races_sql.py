"""Writers that race for what does not exist yet (the first messages to a new number, sent
at once, or sent while its history is imported) all succeed, on each database: the loser of
the race for the new conversation or contact finds the winner's and stores its messages
there."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.adapters.sql.test_begin_write_sql import PausedAfterRead
from tests.contract.builders import World, phone, seed
from tests.unit.usecases.harness import incoming
from whatsgate.adapters.memory import MemoryMediaStore
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind
from whatsgate.domain.pacing import PacingPolicy, SendPacer
from whatsgate.ports.engine import ContactInfo, HistoryBatch
from whatsgate.ports.repositories import CommitListener
from whatsgate.testing.clock import FakeClock
from whatsgate.testing.engine import FakeEngine
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.history import (
    ImportHistory,
    ImportHistoryCommand,
    SyncContacts,
    SyncContactsCommand,
)
from whatsgate.usecases.send import SendMessage, SendMessageCommand, SendMessageResult

TO = "+55 11 90000-0042"
T = TypeVar("T")


async def paired(
    engine: AsyncEngine, on_commit: CommitListener | None = None
) -> tuple[SqlUnitOfWorkFactory, World, SendMessage]:
    """A seeded world whose session is paired, and a SendMessage on ``engine``."""
    make = SqlUnitOfWorkFactory(engine, on_commit=on_commit)
    world = await seed(make)
    async with make() as uow:
        session = await uow.sessions.get(world.session_id)
        assert session is not None
        await uow.sessions.save(dataclasses.replace(session, jid=phone(1)))
        await uow.commit()
    send = SendMessage(
        make, FakeClock(), MemoryMediaStore(), SendPacer(PacingPolicy(), random.Random(1))
    )
    return make, world, send


async def beside_a_send(
    send: SendMessage, world: World, other: Awaitable[T]
) -> tuple[T, SendMessageResult]:
    """``other`` and a text to ``TO``, at once."""
    command = SendMessageCommand(
        session_id=world.session_id, to=TO, kind=MessageKind.TEXT, text="new"
    )
    done, sent = await asyncio.wait_for(asyncio.gather(other, send(command)), 30)
    return done, sent


async def test_first_messages_to_a_new_number_sent_at_once_all_queue_in_one_conversation(
    engine: AsyncEngine,
) -> None:
    make, world, send = await paired(engine)
    to = TO

    async def one(n: int) -> str:
        command = SendMessageCommand(
            session_id=world.session_id, to=to, kind=MessageKind.TEXT, text=f"hello {n}"
        )
        return (await send(command)).message.conversation_id

    conversations = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(4))), 30)
    assert len(set(conversations)) == 1
    async with make() as uow:
        messages = (await uow.messages.list_for_conversation(conversations[0], limit=10)).items
        contact = await uow.contacts.get_by_jid(world.session_id, Jid.phone(to))
    assert sorted(m.text or "" for m in messages) == [f"hello {n}" for n in range(4)]
    assert contact is not None


async def test_history_imported_while_sending_to_the_new_number_keeps_every_message(
    engine: AsyncEngine,
) -> None:
    make, world, send = await paired(engine)
    chat = str(Jid.phone(TO))
    batch = HistoryBatch(
        messages=tuple(incoming(f"H{n}", chat=chat, text=f"old {n}") for n in range(3)),
        is_last=True,
    )
    history = ImportHistory(make, FakeClock())
    imported, sent = await beside_a_send(
        send, world, history(ImportHistoryCommand(session_id=world.session_id, batch=batch))
    )
    assert imported.stored == 3
    async with make() as uow:
        found = await uow.conversations.get_by_chat(world.session_id, Jid.phone(TO))
        assert found is not None and found.id == sent.message.conversation_id
        page = await uow.messages.list_for_conversation(found.id, limit=10)
    assert sorted(m.text or "" for m in page.items) == ["new", "old 0", "old 1", "old 2"]


async def test_contacts_synced_while_sending_to_the_new_number_are_all_kept(
    engine: AsyncEngine,
) -> None:
    make, world, send = await paired(engine)
    others = [Jid.phone(f"+55 11 90000-{n:04d}") for n in range(100, 400)]
    book = (
        ContactInfo(jid=Jid.phone(TO), name="Nina"),
        *(ContactInfo(jid=jid, name=f"Other {n}") for n, jid in enumerate(others)),
    )
    clock = FakeClock()
    sync = SyncContacts(make, SessionConnections(FakeEngine(clock), clock), clock)
    count, _ = await beside_a_send(
        send, world, sync(SyncContactsCommand(session_id=world.session_id, contacts=book))
    )
    assert count == 301
    async with make() as uow:
        nina = await uow.contacts.get_by_jid(world.session_id, Jid.phone(TO))
        kept = [await uow.contacts.get_by_jid(world.session_id, jid) for jid in others]
    assert nina is not None and nina.name == "Nina"
    assert all(c is not None for c in kept)


async def test_a_contact_a_sync_is_creating_is_not_created_again_by_a_send(
    engine: AsyncEngine,
) -> None:
    """The sync has looked the new number up (not there) and goes on to create its contact;
    a send to that number meanwhile waits for it (on SQLite its turn, on PostgreSQL the
    address's lock: there is no row yet to lock) and finds the sync's contact, where it
    created a second one for the same number."""
    make, world, send = await paired(engine)
    paused = PausedAfterRead(engine, "get_many", repository="contacts")
    clock = FakeClock()
    sync = SyncContacts(paused, SessionConnections(FakeEngine(clock), clock), clock)
    syncing = asyncio.ensure_future(
        sync(
            SyncContactsCommand(
                session_id=world.session_id,
                contacts=(ContactInfo(jid=Jid.phone(TO), name="Nina"),),
            )
        )
    )
    command = SendMessageCommand(
        session_id=world.session_id, to=TO, kind=MessageKind.TEXT, text="new"
    )
    sending = await paused.meanwhile(send(command))
    count, _ = await asyncio.wait_for(asyncio.gather(syncing, sending), 10)
    assert count == 1
    async with make() as uow:
        page = await uow.contacts.search(world.session_id, text="90000")
    assert [(c.jid, c.name) for c in page.items] == [(Jid.phone(TO), "Nina")]
