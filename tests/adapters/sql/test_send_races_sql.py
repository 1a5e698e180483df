"""Sends that race for what does not exist yet (the first messages to a new number, sent at
once) all succeed, on each database: the loser of the race for the new conversation or
contact finds the winner's and queues its message there."""

from __future__ import annotations

import asyncio
import dataclasses
import random

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import phone, seed
from whatsgate.adapters.memory import MemoryMediaStore
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind
from whatsgate.domain.pacing import PacingPolicy, SendPacer
from whatsgate.testing.clock import FakeClock
from whatsgate.usecases.send import SendMessage, SendMessageCommand


async def test_first_messages_to_a_new_number_sent_at_once_all_queue_in_one_conversation(
    engine: AsyncEngine,
) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    async with make() as uow:  # paired
        session = await uow.sessions.get(world.session_id)
        assert session is not None
        await uow.sessions.save(dataclasses.replace(session, jid=phone(1)))
        await uow.commit()
    send = SendMessage(
        make, FakeClock(), MemoryMediaStore(), SendPacer(PacingPolicy(), random.Random(1))
    )
    to = "+55 11 90000-0042"

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
