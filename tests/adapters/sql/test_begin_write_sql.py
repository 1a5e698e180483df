"""Units of work that read what they then write over take their turn first
(``UnitOfWork.begin_write``): on SQLite no other writer's change lands between their read and
their commit, so an attendant's change and a message arriving at the same moment both
stay."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import conversation, phone, seed
from tests.databases import copy_sqlite
from tests.unit.usecases.harness import incoming
from whatsgate.adapters.memory import MemoryMediaStore
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.repositories import one_hop_driver
from whatsgate.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from whatsgate.domain.conversation import ConversationStatus
from whatsgate.domain.message import MessageKind
from whatsgate.domain.pacing import PacingPolicy, SendPacer
from whatsgate.testing.clock import FakeClock
from whatsgate.usecases.inbox import (
    AssignConversation,
    AssignConversationCommand,
    SetConversationStatus,
    SetConversationStatusCommand,
)
from whatsgate.usecases.ingest import IncomingMessageCommand, ProcessIncomingMessage
from whatsgate.usecases.send import SendMessage, SendMessageCommand


class PausedAfterRead(SqlUnitOfWorkFactory):
    """Units of work that, once they have read a conversation (``conversations.<method>``),
    say so (``read``) and wait for ``go`` before going on."""

    def __init__(self, engine: AsyncEngine, method: str = "get") -> None:
        super().__init__(engine)
        self.method = method
        self.read = asyncio.Event()
        self.go = asyncio.Event()

    def __call__(self) -> SqlUnitOfWork:
        uow = super().__call__()
        read = getattr(uow.conversations, self.method)

        async def read_then_wait(*args: Any) -> Any:
            found = await read(*args)
            self.read.set()
            await self.go.wait()
            return found

        setattr(uow.conversations, self.method, read_then_wait)
        return uow


async def test_an_attendants_change_and_a_message_arriving_meanwhile_both_stay_on_sqlite(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """The status change reads the conversation, then a message arrives before it saves:
    ingest waits for its turn, then counts the message on the changed conversation. (Had
    ingest written in between, saving the status would have put the unread count back to
    0.) PostgreSQL's writers take no turns: there the later save still wins."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    try:
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
                SetConversationStatusCommand(
                    conversation_id=chat.id, status=ConversationStatus.ACTIVE
                )
            )
        )
        await asyncio.wait_for(paused.read.wait(), 5)
        ingest = ProcessIncomingMessage(make, clock)
        arriving = asyncio.ensure_future(
            ingest(
                IncomingMessageCommand(
                    session_id=world.session_id, message=incoming("w1", chat=str(phone(7)))
                )
            )
        )
        await asyncio.sleep(0.2)
        assert not arriving.done()  # waiting for its turn, not written in between
        paused.go.set()
        await asyncio.wait_for(asyncio.gather(change, arriving), 5)
        async with make() as uow:
            stored = await uow.conversations.get(chat.id)
        assert stored is not None
        assert (stored.status, stored.unread_count) == (ConversationStatus.ACTIVE, 1)
    finally:
        await engine.dispose()


async def test_an_assignment_made_while_a_message_is_sent_stays_on_sqlite(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """The send reads the conversation, then an attendant assigns it before the send saves
    it: the assignment waits for its turn and lands after; the send no longer saves the
    conversation as it was before the assignment."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    try:
        make = SqlUnitOfWorkFactory(engine)
        world = await seed(make)
        async with make() as uow:
            await uow.sessions.save(dataclasses.replace(world.session, jid=phone(1)))
            chat = conversation(world, phone(7))
            await uow.conversations.save(chat)
            await uow.commit()
        clock = FakeClock()
        paused = PausedAfterRead(engine, "get_by_chat")
        send = SendMessage(
            paused, clock, MemoryMediaStore(), SendPacer(PacingPolicy(), random.Random(1))
        )
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
        await asyncio.wait_for(paused.read.wait(), 5)
        assigning = asyncio.ensure_future(
            AssignConversation(make, clock)(
                AssignConversationCommand(conversation_id=chat.id, assignee_id=world.admin.id)
            )
        )
        await asyncio.sleep(0.2)
        assert not assigning.done()  # waiting for its turn, not written in between
        paused.go.set()
        sent, _ = await asyncio.wait_for(asyncio.gather(sending, assigning), 5)
        async with make() as uow:
            stored = await uow.conversations.get(chat.id)
        assert stored is not None
        assert (stored.assignee_id, stored.last_message_id) == (world.admin.id, sent.message.id)
    finally:
        await engine.dispose()


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
