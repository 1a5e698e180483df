"""Sends made at once share one unit of work on each database (``SendMessage``'s group
commit): each is stored as it would be alone, and one refused by its checks leaves the
others' transaction usable (on PostgreSQL too, where a failed statement would end it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.adapters.sql.test_send_races_sql import paired
from whatsgate.domain.errors import MessageNotFound, SessionNotFound
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind, MessageStatus
from whatsgate.usecases.send import SendMessageCommand, SendMessageResult

NINA, OTTO = "+55 11 90000-0101", "+55 11 90000-0102"


def text(session_id: str, to: str, body: str, reply_to: str | None = None) -> SendMessageCommand:
    return SendMessageCommand(
        session_id=session_id, to=to, kind=MessageKind.TEXT, text=body, reply_to=reply_to
    )


async def test_sends_made_at_once_are_stored_in_one_commit_and_one_refused_fails_alone(
    engine: AsyncEngine,
) -> None:
    commits: list[Sequence[StoredEvent]] = []
    make, world, send = await paired(engine, on_commit=commits.append)
    commits.clear()  # the pairing's
    sid = world.session_id
    results = await asyncio.wait_for(
        asyncio.gather(
            send(text(sid, NINA, "one")),
            send(text("no-such-session", NINA, "lost")),
            send(text(sid, OTTO, "two")),
            # A statement that finds nothing, then a refusal: the transaction goes on.
            send(text(sid, NINA, "not a reply", reply_to="no-such-message")),
            send(text(sid, NINA, "three")),
            return_exceptions=True,
        ),
        30,
    )
    assert isinstance(results[1], SessionNotFound)
    assert isinstance(results[3], MessageNotFound)
    sent = [r for r in results if isinstance(r, SendMessageResult)]
    assert [r.message.text for r in sent] == ["one", "two", "three"]
    assert len(commits) == 1  # one commit stored the three sends' events
    assert [e.name for e in commits[0]].count("message.new") == 3
    async with make() as uow:
        stored = [await uow.messages.get(r.id) for r in sent]
        entries = [await uow.outbox.get_for_message(r.id) for r in sent]
        nina = await uow.conversations.get_by_chat(sid, Jid.phone(NINA))
        otto = await uow.conversations.get_by_chat(sid, Jid.phone(OTTO))
    assert all(m is not None and m.status is MessageStatus.QUEUED for m in stored)
    assert all(e is not None for e in entries)
    assert nina is not None and otto is not None
    assert [m.conversation_id for m in stored if m is not None] == [nina.id, otto.id, nina.id]
    assert nina.last_message_preview == "three"
