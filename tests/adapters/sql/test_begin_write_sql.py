"""Units of work that read what they then write over declare it first
(``UnitOfWork.begin_write``), so that an attendant's change and a message arriving at the same
moment both stay, on each database: on SQLite no other writer's change lands between their
read and their commit (one writer at a time); on PostgreSQL the rows they read are locked
until they commit, in one order (contacts, conversations, messages), and where two units of
work still wait for each other one ends in ``WriteConflict`` and runs again."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import World, contact, conversation, phone, seed
from tests.databases import copy_sqlite
from tests.unit.usecases.harness import World as UseCases
from tests.unit.usecases.harness import incoming
from whatsgate.adapters.memory import MemoryMediaStore
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.repositories import one_hop_driver
from whatsgate.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from whatsgate.domain.conversation import Conversation, ConversationStatus
from whatsgate.domain.errors import WriteConflict
from whatsgate.domain.message import MessageKind, MessageStatus
from whatsgate.domain.pacing import PacingPolicy, SendPacer
from whatsgate.ports.engine import HistoryBatch, Receipt, ReceiptType
from whatsgate.testing.clock import FakeClock
from whatsgate.usecases.history import ImportHistory, ImportHistoryCommand
from whatsgate.usecases.inbox import (
    AssignConversation,
    AssignConversationCommand,
    ReceiptCommand,
    SetConversationStatus,
    SetConversationStatusCommand,
)
from whatsgate.usecases.ingest import IncomingMessageCommand, ProcessIncomingMessage
from whatsgate.usecases.outbox import DeliverCommand
from whatsgate.usecases.send import ReactionSpec, SendMessage, SendMessageCommand

T = TypeVar("T")


class PausedAfterRead(SqlUnitOfWorkFactory):
    """Units of work that, once they have read (``<repository>.<method>``, the calls after the
    first ``skip``), say so (``read``) and wait for ``go`` before going on."""

    def __init__(
        self,
        engine: AsyncEngine,
        method: str = "get",
        *,
        repository: str = "conversations",
        skip: int = 0,
    ) -> None:
        super().__init__(engine)
        self.method, self.repository, self.skip = method, repository, skip
        self.read = asyncio.Event()
        self.go = asyncio.Event()

    def __call__(self) -> SqlUnitOfWork:
        uow = super().__call__()
        reads = getattr(uow, self.repository)
        read = getattr(reads, self.method)

        async def read_then_wait(*args: Any) -> Any:
            found = await read(*args)
            if self.skip:
                self.skip -= 1
                return found
            self.read.set()
            await self.go.wait()
            return found

        setattr(reads, self.method, read_then_wait)
        return uow

    async def meanwhile(self, writer: Awaitable[T]) -> asyncio.Future[T]:
        """Once a unit of work has read: start ``writer`` and check that it waits for that
        one (nothing written in between), then let the reader go on. The writer's future."""
        await asyncio.wait_for(self.read.wait(), 5)
        waiting = asyncio.ensure_future(writer)
        await asyncio.sleep(0.2)
        assert not waiting.done()  # waiting for the reader, not written in between
        self.go.set()
        return waiting


async def paired_chat(make: SqlUnitOfWorkFactory) -> tuple[World, Conversation]:
    """A paired session, and its contact and conversation with ``phone(7)``."""
    world = await seed(make)
    chat = conversation(world, phone(7))
    async with make() as uow:
        await uow.sessions.save(dataclasses.replace(world.session, jid=phone(1)))
        await uow.contacts.save(contact(world, phone(7)))
        await uow.conversations.save(chat)
        await uow.commit()
    return world, chat


def paused_send(engine: AsyncEngine, clock: FakeClock) -> tuple[PausedAfterRead, SendMessage]:
    """A ``SendMessage`` that pauses once it has read the conversation."""
    paused = PausedAfterRead(engine, "get_by_chat")
    pacer = SendPacer(PacingPolicy(), random.Random(1))
    return paused, SendMessage(paused, clock, MemoryMediaStore(), pacer)


async def test_an_attendants_change_and_a_message_arriving_meanwhile_both_stay(
    engine: AsyncEngine,
) -> None:
    """The status change reads the conversation, then a message arrives before it saves:
    ingest waits (for its turn on SQLite, for the conversation's lock on PostgreSQL), then
    counts the message on the changed conversation. (Had ingest written in between, saving
    the status would have put the unread count back to 0.)"""
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    chat = conversation(world, phone(7))
    async with make() as uow:
        await uow.conversations.save(chat)
        await uow.commit()
    clock = FakeClock()
    paused = PausedAfterRead(engine)
    change = asyncio.ensure_future(
        SetConversationStatus(paused, clock)(
            SetConversationStatusCommand(conversation_id=chat.id, status=ConversationStatus.ACTIVE)
        )
    )
    arriving = await paused.meanwhile(
        ProcessIncomingMessage(make, clock)(
            IncomingMessageCommand(
                session_id=world.session_id, message=incoming("w1", chat=str(phone(7)))
            )
        )
    )
    await asyncio.wait_for(asyncio.gather(change, arriving), 5)
    async with make() as uow:
        stored = await uow.conversations.get(chat.id)
    assert stored is not None
    assert (stored.status, stored.unread_count) == (ConversationStatus.ACTIVE, 1)


async def test_an_assignment_made_while_a_message_is_sent_stays(engine: AsyncEngine) -> None:
    """The send reads the conversation, then an attendant assigns it before the send saves
    it: the assignment waits and lands after; the send no longer saves the conversation as
    it was before the assignment."""
    make = SqlUnitOfWorkFactory(engine)
    world, chat = await paired_chat(make)
    clock = FakeClock()
    paused, send = paused_send(engine, clock)
    sending = asyncio.ensure_future(
        send(
            SendMessageCommand(
                session_id=world.session_id,
                to=str(phone(7)),
                kind=MessageKind.TEXT,
                text="on my way",
            )
        )
    )
    assigning = await paused.meanwhile(
        AssignConversation(make, clock)(
            AssignConversationCommand(conversation_id=chat.id, assignee_id=world.admin.id)
        )
    )
    sent, _ = await asyncio.wait_for(asyncio.gather(sending, assigning), 5)
    async with make() as uow:
        stored = await uow.conversations.get(chat.id)
    assert stored is not None
    assert (stored.assignee_id, stored.last_message_id) == (world.admin.id, sent.message.id)


async def test_a_message_arriving_while_one_is_sent_to_its_contact_waits_without_a_conflict(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A send reads the contact, then the conversation; a message from that contact arrives
    meanwhile. Ingest reads them in the same order, so on PostgreSQL it waits for the send's
    locks instead of holding the contact while the send waits for it (a deadlock, which
    PostgreSQL would end after a second, and the loser would run again): both are stored
    in one go each, and the conversation counts both."""
    make = SqlUnitOfWorkFactory(engine)
    world, chat = await paired_chat(make)
    clock = FakeClock()
    paused, send = paused_send(engine, clock)
    command = SendMessageCommand(
        session_id=world.session_id, to=str(phone(7)), kind=MessageKind.TEXT, text="on my way"
    )
    with caplog.at_level(logging.INFO, logger="whatsgate.races"):
        sending = asyncio.ensure_future(send(command))
        arriving = await paused.meanwhile(
            ProcessIncomingMessage(make, clock)(
                IncomingMessageCommand(
                    session_id=world.session_id, message=incoming("w1", chat=str(phone(7)))
                )
            )
        )
        await asyncio.wait_for(asyncio.gather(sending, arriving), 10)
    assert [r.message for r in caplog.records if r.name == "whatsgate.races"] == []
    async with make() as uow:
        stored = await uow.conversations.get(chat.id)
        messages = await uow.messages.list_for_conversation(chat.id, limit=10)
    assert stored is not None
    assert (stored.unread_count, len(messages.items)) == (1, 2)


async def test_units_of_work_waiting_for_each_others_rows_end_in_a_write_conflict_on_postgresql(
    postgres_engine: AsyncEngine,
) -> None:
    """Two units of work that lock two conversations in opposite orders: PostgreSQL ends one
    (a deadlock), which raises ``WriteConflict`` (a ``Conflict``, not a database error) and
    wrote nothing; the other commits."""
    make = SqlUnitOfWorkFactory(postgres_engine)
    world = await seed(make)
    first, second = conversation(world, phone(7)), conversation(world, phone(8))
    async with make() as uow:
        await uow.conversations.save_many([first, second])
        await uow.commit()
    holding = [asyncio.Event(), asyncio.Event()]

    async def lock(me: int, ids: tuple[str, str], preview: str) -> None:
        async with make() as uow:
            await uow.begin_write()
            found = await uow.conversations.get(ids[0])
            holding[me].set()
            await holding[1 - me].wait()
            other = await uow.conversations.get(ids[1])
            assert found is not None and other is not None
            found.last_message_preview = other.last_message_preview = preview
            await uow.conversations.save_many([found, other])
            await uow.commit()

    outcomes = await asyncio.wait_for(
        asyncio.gather(
            lock(0, (first.id, second.id), "zero"),
            lock(1, (second.id, first.id), "one"),
            return_exceptions=True,
        ),
        10,
    )
    conflicts = [o for o in outcomes if isinstance(o, WriteConflict)]
    assert len(conflicts) == 1 and outcomes.count(None) == 1, outcomes
    winner = "zero" if outcomes[0] is None else "one"
    async with make() as uow:
        stored = [await uow.conversations.get(c.id) for c in (first, second)]
    assert [c.last_message_preview if c else None for c in stored] == [winner, winner]


async def test_a_unit_that_began_to_write_reads_and_writes_in_one_sqlite_transaction(
    tmp_path: Path, sqlite_template: Path
) -> None:
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    try:
        make = SqlUnitOfWorkFactory(engine)
        world = await seed(make)
        async with make() as uow:
            driver = one_hop_driver(uow.connection)
            assert driver is not None
            assert not driver.in_transaction  # reads alone open none
            await uow.begin_write()
            assert driver.in_transaction
            assert await uow.sessions.get(world.session_id) is not None
            await uow.conversations.save(conversation(world, phone(8)))
            await uow.commit()
            assert not driver.in_transaction
        async with make() as uow:
            await uow.begin_write()
            await uow.conversations.save(conversation(world, phone(9)))
            # left without commit: rolled back, and the next writer's turn comes at once
        async with make() as uow:
            await asyncio.wait_for(uow.begin_write(), 2)
            assert await uow.conversations.get_by_chat(world.session_id, phone(8)) is not None
            assert await uow.conversations.get_by_chat(world.session_id, phone(9)) is None
    finally:
        await engine.dispose()


async def test_units_of_work_one_after_another_reuse_the_last_connection(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """SQLite drops a connection's page cache whenever another connection has committed
    since it last read: handing out the connection used last (not the one idle longest)
    keeps the cache of a quiet process warm."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    try:
        make = SqlUnitOfWorkFactory(engine)
        await seed(make)
        opened = [make() for _ in range(3)]
        for uow in opened:  # three connections in the pool
            await uow.__aenter__()
        for uow in opened:
            await uow.__aexit__(None, None, None)
        drivers = []
        for _ in range(3):
            async with make() as uow:
                drivers.append(one_hop_driver(uow.connection))
        assert drivers[0] is not None
        assert drivers == [drivers[0]] * 3
    finally:
        await engine.dispose()


async def test_an_assignment_made_while_history_is_imported_stays(engine: AsyncEngine) -> None:
    """A chunk of history reads the conversation (to move its preview), then an attendant
    assigns it before the chunk saves: the assignment waits and lands after; the chunk
    does not save the conversation as it was before."""
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    chat = conversation(world, phone(7))
    async with make() as uow:
        await uow.contacts.save(contact(world, phone(7)))
        await uow.conversations.save(chat)
        await uow.commit()
    clock = FakeClock()
    paused = PausedAfterRead(engine, "get_many_by_chat")
    batch = HistoryBatch(
        messages=tuple(incoming(f"H{n}", chat=str(phone(7)), text=f"old {n}") for n in range(3)),
        is_last=True,
    )
    importing = asyncio.ensure_future(
        ImportHistory(paused, clock)(ImportHistoryCommand(session_id=world.session_id, batch=batch))
    )
    assigning = await paused.meanwhile(
        AssignConversation(make, clock)(
            AssignConversationCommand(conversation_id=chat.id, assignee_id=world.admin.id)
        )
    )
    imported, _ = await asyncio.wait_for(asyncio.gather(importing, assigning), 5)
    assert imported.stored == 3
    async with make() as uow:
        stored = await uow.conversations.get(chat.id)
    assert stored is not None
    assert (stored.assignee_id, stored.last_message_preview) == (world.admin.id, "old 2")


class SqlUseCases(UseCases):
    """The use cases wired as in the unit tests, on a database."""

    def __init__(self, make: SqlUnitOfWorkFactory) -> None:
        self.make = make
        super().__init__()

    def uow(self) -> SqlUnitOfWork:  # type: ignore[override]
        return self.make()


async def test_a_read_receipt_arriving_while_our_reaction_is_recorded_stays(
    engine: AsyncEngine,
) -> None:
    """The outbox sent our reaction and, recording it, reads the message reacted to (to show
    the reaction); a read receipt for that message arrives before it saves: the receipt waits
    and lands after. (Had it landed in between, saving the message with the reaction would
    have taken its tick back to "sent".)"""
    world = SqlUseCases(SqlUnitOfWorkFactory(engine))
    session = await world.connected_session()
    to = str(phone(7))
    sent = await world.send(
        SendMessageCommand(session_id=session.id, to=to, kind=MessageKind.TEXT, text="hi")
    )
    await world.deliver(DeliverCommand())
    target = await world.message(sent.id)
    assert target.wa_id is not None and target.status is MessageStatus.SENT
    await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=to,
            kind=MessageKind.REACTION,
            reaction=ReactionSpec(message_id=sent.id, emoji="❤️"),
        )
    )
    await world.clock.advance(5)  # past pacing's gap between two sends
    # The claim reads the target once (who sent it); the write reads it again, to change it.
    paused = PausedAfterRead(engine, "get_by_wa_id", repository="messages", skip=1)
    world.deliver.uow = paused
    delivering = asyncio.ensure_future(world.deliver(DeliverCommand()))
    receipt = Receipt(
        chat=phone(7),
        sender=phone(7),
        wa_ids=(target.wa_id,),
        type=ReceiptType.READ,
        timestamp=world.clock.now(),
    )
    reading = await paused.meanwhile(
        world.receipts(ReceiptCommand(session_id=session.id, receipt=receipt))
    )
    report, _ = await asyncio.wait_for(asyncio.gather(delivering, reading), 5)
    assert report.sent == 1
    stored = await world.message(sent.id)
    assert (stored.status, stored.reactions) == (MessageStatus.READ, {str(session.jid): "❤️"})
