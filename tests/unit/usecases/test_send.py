from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from itertools import pairwise
from typing import Any, Self

import pytest

from whatsgate.adapters.memory.uow import MemoryStore, MemoryUnitOfWork
from whatsgate.domain.auth import Principal, Role
from whatsgate.domain.errors import (
    InvalidJid,
    InvalidMessage,
    InvalidPhoneNumber,
    MediaTooLarge,
    MessageNotFound,
    PermissionDenied,
    SessionNotConnected,
    SessionNotFound,
    WhatsgateError,
)
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import ContactCard, Location, MessageKind, MessageStatus
from whatsgate.domain.outbox import OutboxState
from whatsgate.domain.sending import MB
from whatsgate.testing import settle
from whatsgate.usecases.inbox import AssignConversation, AssignConversationCommand
from whatsgate.usecases.outbox import DeliverCommand
from whatsgate.usecases.send import (
    CheckNumbersCommand,
    OutgoingMedia,
    ReactionSpec,
    SendMessage,
    SendMessageCommand,
    SendMessageResult,
)
from whatsgate.usecases.sessions import SessionCommand

from .harness import ALICE, BOB, World, _Counted
from .test_access_and_pairing import add_agent, as_principal

K = MessageKind
TO = "+55 (66) 99999-0001"
TO_JID = Jid.parse("5566999990001@s.whatsapp.net")
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 1000
ANIMATED_WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02" + b"\x00" * 10


@pytest.fixture
def world() -> World:
    return World()


def text(session_id: str, body: str = "Olá!", **kwargs: Any) -> SendMessageCommand:
    return SendMessageCommand(session_id=session_id, to=TO, kind=K.TEXT, text=body, **kwargs)


async def test_a_text_is_stored_queued_with_its_outbox_entry_and_published(world: World) -> None:
    session = await world.connected_session()
    result = await world.send(text(session.id))
    assert (result.status, result.throttled) == (MessageStatus.QUEUED, False)
    message = await world.message(result.id)
    assert (message.chat, message.sender, message.text) == (TO_JID, session.jid, "Olá!")
    assert message.wa_id is None and not message.is_inbound
    entry = await world.outbox_entry(result.id)
    assert (entry.state, entry.attempts, entry.next_attempt_at) == (
        OutboxState.PENDING,
        0,
        world.clock.now(),
    )
    [new] = world.events("message.new")
    assert (new.data["id"], new.data["status"], new.data["chat"]) == (
        result.id,
        "queued",
        str(TO_JID),
    )
    [conversation] = world.store.conversations.values()
    assert (conversation.chat, conversation.last_message_preview) == (TO_JID, "Olá!")
    assert world.events("conversation.updated")[-1].data["id"] == conversation.id
    [contact] = world.store.contacts.values()
    assert contact.jid == TO_JID
    assert world.wake.is_set()  # the outbox worker is told at once
    assert world.fake.sent == []  # sending is the worker's job


async def test_a_second_message_to_the_same_chat_joins_its_conversation(world: World) -> None:
    session = await world.connected_session()
    first = await world.send(text(session.id, "one"))
    second = await world.send(
        SendMessageCommand(session_id=session.id, to=str(TO_JID), kind=K.TEXT, text="two")
    )
    assert (await world.message(first.id)).conversation_id == (
        await world.message(second.id)
    ).conversation_id
    assert len(world.store.conversations) == 1 and len(world.store.contacts) == 1


async def test_media_bytes_go_to_the_media_store(world: World) -> None:
    session = await world.connected_session()
    voice = b"OggS" + b"v" * 5000
    result = await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=K.VOICE,
            media=OutgoingMedia(data=voice, mime="audio/ogg; codecs=opus"),
        )
    )
    media = (await world.message(result.id)).media
    assert media is not None and media.storage_key is not None
    assert (media.mime, media.size) == ("audio/ogg; codecs=opus", len(voice))
    assert media.sha256 == hashlib.sha256(voice).hexdigest()
    assert world.media.blobs[media.storage_key] == voice


async def test_an_image_caption_is_the_message_text(world: World) -> None:
    session = await world.connected_session()
    result = await world.send(
        SendMessageCommand(
            session_id=session.id,
            to="120363025246125486@g.us",
            kind=K.IMAGE,
            media=OutgoingMedia(data=JPEG, mime="image/jpeg", file_name="a.jpg", caption="look"),
        )
    )
    message = await world.message(result.id)
    assert message.text == "look" and message.chat.is_group
    assert message.media is not None and message.media.file_name == "a.jpg"
    assert world.store.contacts == {}  # a group is not a contact


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"text": ""}, InvalidMessage),
        ({"text": "x" * 65_537}, InvalidMessage),
        ({"to": "not a number"}, InvalidPhoneNumber),
        ({"to": "status@broadcast"}, InvalidJid),
        ({"kind": K.POLL}, InvalidMessage),
        ({"location": Location(latitude=1, longitude=2)}, InvalidMessage),
        ({"kind": K.IMAGE, "text": None}, InvalidMessage),
        (
            {"kind": K.IMAGE, "text": None, "media": OutgoingMedia(data=JPEG, mime="video/mp4")},
            InvalidMessage,
        ),
        (
            {
                "kind": K.VIDEO,
                "text": None,
                "media": OutgoingMedia(data=b"v" * (16 * MB + 1), mime="video/mp4"),
            },
            MediaTooLarge,
        ),
        (
            {"kind": K.STICKER, "text": None, "media": OutgoingMedia(data=b"", mime="image/webp")},
            InvalidMessage,
        ),
        (
            {
                "kind": K.STICKER,
                "text": None,
                "media": OutgoingMedia(data=b"RIFF" + b"s" * 120_000, mime="image/webp"),
            },
            MediaTooLarge,
        ),
        (
            {
                "kind": K.AUDIO,
                "text": None,
                "media": OutgoingMedia(data=b"a", mime="audio/mpeg", caption="no"),
            },
            InvalidMessage,
        ),
        (
            {"kind": K.DOCUMENT, "text": None, "media": OutgoingMedia(data=b"d", mime="nonsense")},
            InvalidMessage,
        ),
        ({"kind": K.LOCATION, "text": None}, InvalidMessage),
        (
            {"kind": K.CONTACT, "text": None, "contact": ContactCard(display_name="A", vcard="")},
            InvalidMessage,
        ),
        ({"reply_to": "no-such-message"}, MessageNotFound),
    ],
)
async def test_invalid_sends_are_refused_and_nothing_is_stored(
    world: World, changes: dict[str, Any], error: type[WhatsgateError]
) -> None:
    session = await world.connected_session()
    fields: dict[str, Any] = {"session_id": session.id, "to": TO, "kind": K.TEXT, "text": "hi"}
    fields.update(changes)
    with pytest.raises(error):
        await world.send(SendMessageCommand(**fields))
    assert world.store.messages == {} and world.store.outbox == {}
    assert world.media.blobs == {}
    assert world.events("message.new") == []


async def test_kinds_within_whatsapps_limits_are_accepted(world: World) -> None:
    session = await world.connected_session()
    sends = [
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=K.STICKER,
            media=OutgoingMedia(data=ANIMATED_WEBP + b"\x00" * 400_000, mime="image/webp"),
        ),
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=K.DOCUMENT,
            media=OutgoingMedia(data=b"%PDF" * 10, mime="application/pdf", file_name="a.pdf"),
        ),
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=K.LOCATION,
            location=Location(latitude=-15.6, longitude=-56.1, name="Cuiabá"),
        ),
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=K.CONTACT,
            contact=ContactCard(display_name="Ana", vcard="BEGIN:VCARD\nFN:Ana\nEND:VCARD"),
        ),
        text(session.id, "x" * 65_536),
    ]
    kinds = [(await world.send(command)).message.kind for command in sends]
    assert kinds == [K.STICKER, K.DOCUMENT, K.LOCATION, K.CONTACT, K.TEXT]
    assert len(world.store.outbox) == 5


async def test_replies_and_reactions_point_at_a_sent_message(world: World) -> None:
    session = await world.connected_session()
    first = await world.send(text(session.id, "first"))
    with pytest.raises(InvalidMessage):  # not sent yet: WhatsApp cannot quote it
        await world.send(text(session.id, "re", reply_to=first.id))
    await world.deliver(DeliverCommand())
    wa_id = (await world.message(first.id)).wa_id
    assert wa_id is not None
    reply = await world.send(text(session.id, "re", reply_to=first.id))
    by_wa_id = await world.send(text(session.id, "re2", reply_to=wa_id))
    assert (await world.message(reply.id)).quoted_wa_id == wa_id
    assert (await world.message(by_wa_id.id)).quoted_wa_id == wa_id
    preview = next(iter(world.store.conversations.values())).last_message_preview
    reaction = await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=K.REACTION,
            reaction=ReactionSpec(message_id=first.id, emoji="👍"),
        )
    )
    stored = await world.message(reaction.id)
    assert (stored.kind, stored.text, stored.target_wa_id) == (K.REACTION, "👍", wa_id)
    # A reaction is not the conversation's last message.
    assert next(iter(world.store.conversations.values())).last_message_preview == preview


async def test_the_session_must_exist_and_be_paired_but_need_not_be_connected(
    world: World,
) -> None:
    with pytest.raises(SessionNotFound):
        await world.send(text("no-such-session"))
    unpaired = await world.new_session()
    with pytest.raises(SessionNotConnected):
        await world.send(text(unpaired.id))
    session = await world.connected_session()
    await world.stop(SessionCommand(session_id=session.id))
    result = await world.send(text(session.id))
    assert result.status is MessageStatus.QUEUED


async def test_with_a_principal_the_send_checks_access_as_access_sender_does(
    world: World,
) -> None:
    session = await world.connected_session()
    to_alice = SendMessageCommand(session_id=session.id, to=ALICE, kind=K.TEXT, text="Oi")
    queued = await world.send(to_alice)
    _, stranger = await world.organization("Other")
    agent = await add_agent(world, session.organization_id)
    before = len(world.store.messages)
    with pytest.raises(SessionNotFound):
        await world.send(to_alice, principal=as_principal(stranger))
    with pytest.raises(SessionNotFound):
        await world.send(text("no-such-session"), principal=as_principal(agent))
    with pytest.raises(PermissionDenied):
        await world.send(to_alice, principal=as_principal(agent))
    # The access check comes before the message's own checks, as it did in the handler.
    with pytest.raises(PermissionDenied):
        await world.send(
            SendMessageCommand(session_id=session.id, to=ALICE, kind=K.TEXT),
            principal=as_principal(agent),
        )
    assert len(world.store.messages) == before
    await AssignConversation(world.uow, world.clock)(
        AssignConversationCommand(
            conversation_id=queued.message.conversation_id, assignee_id=agent.id
        )
    )
    sent = await world.send(to_alice, principal=as_principal(agent))
    assert sent.message.conversation_id == queued.message.conversation_id
    with pytest.raises(PermissionDenied):
        await world.send(
            SendMessageCommand(session_id=session.id, to=BOB, kind=K.TEXT, text="Oi"),
            principal=as_principal(agent),
        )
    assert len(world.store.messages) == before + 1


async def test_past_the_pacing_budget_a_send_says_it_is_throttled(world: World) -> None:
    session = await world.connected_session()
    results = [await world.send(text(session.id, f"m{i}")) for i in range(31)]
    assert [r.throttled for r in results] == [False] * 30 + [True]
    assert (await world.outbox_entry(results[-1].id)).throttled


# -- group commit ---------------------------------------------------------------------------


class _CommitCounting(MemoryUnitOfWork):
    """Counts commits; the ones numbered in ``failing`` fail before writing anything (a
    database gone for a moment)."""

    def __init__(self, store: MemoryStore, calls: Counter[str], failing: set[int]) -> None:
        self.calls = calls
        self.failing = failing
        super().__init__(store)

    async def commit(self) -> None:
        self.calls["commit"] += 1
        if self.calls["commit"] in self.failing:
            raise RuntimeError("the database went away")
        await super().commit()


class _SessionReadsCounting(_CommitCounting):
    """Counts commits and reads of sessions."""

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.sessions = _Counted(self.sessions, "sessions", self.calls)
        return self


def counted_send(
    world: World, calls: Counter[str], *, failing: set[int] | None = None, max_group: int = 100
) -> SendMessage:
    """The world's SendMessage, its units of work counting their commits and session reads."""
    return SendMessage(
        lambda: _SessionReadsCounting(world.store, calls, failing or set()),
        world.clock,
        world.media,
        world.pacer,
        world.wake,
        max_group=max_group,
    )


async def test_sends_made_at_once_share_one_unit_of_work(world: World) -> None:
    session = await world.connected_session()
    calls: Counter[str] = Counter()
    send = counted_send(world, calls)
    results = await asyncio.gather(*(send(text(session.id, f"m{i}")) for i in range(5)))
    assert calls["commit"] == 1
    assert len({r.id for r in results}) == 5
    for i, result in enumerate(results):
        message = await world.message(result.id)
        assert (message.text, message.status) == (f"m{i}", MessageStatus.QUEUED)
        assert (await world.outbox_entry(result.id)).state is OutboxState.PENDING
    # One conversation and contact for the new number, events in the order of the calls.
    assert len(world.store.conversations) == 1 and len(world.store.contacts) == 1
    assert [e.data["text"] for e in world.events("message.new")] == [f"m{i}" for i in range(5)]
    assert world.wake.is_set()


async def test_a_send_refused_in_a_group_fails_alone(world: World) -> None:
    session = await world.connected_session()
    calls: Counter[str] = Counter()
    send = counted_send(world, calls)
    results = await asyncio.gather(
        send(text(session.id, "first")),
        send(text("no-such-session", "lost")),
        send(text(session.id, "   ")),
        send(text(session.id, "last")),
        return_exceptions=True,
    )
    assert isinstance(results[1], SessionNotFound)
    assert isinstance(results[2], InvalidMessage)
    first, last = results[0], results[3]
    assert isinstance(first, SendMessageResult) and isinstance(last, SendMessageResult)
    assert calls["commit"] == 1
    assert sorted(m.text or "" for m in world.store.messages.values()) == ["first", "last"]
    assert len(world.store.outbox) == 2


async def test_a_group_whose_unit_of_work_fails_is_written_again_a_send_at_a_time(
    world: World,
) -> None:
    session = await world.connected_session()
    calls: Counter[str] = Counter()
    send = counted_send(world, calls, failing={1})
    results = await asyncio.gather(*(send(text(session.id, f"m{i}")) for i in range(3)))
    assert calls["commit"] == 1 + 3  # the group's, then one per send
    # Each message once, under the id its caller was given.
    assert sorted(world.store.messages) == sorted(r.id for r in results)
    assert [(await world.message(r.id)).text for r in results] == ["m0", "m1", "m2"]
    assert len(world.store.outbox) == 3


async def test_a_group_reads_each_session_once(world: World) -> None:
    session = await world.connected_session()
    other = await world.connected_session("support", phone="5511900000009")
    owner = as_principal(await add_agent(world, session.organization_id))
    admin = Principal(user_id="the-admin", organization_id=session.organization_id, role=Role.ADMIN)
    calls: Counter[str] = Counter()
    send = counted_send(world, calls)
    results = await asyncio.gather(
        *(send(text(session.id, f"m{i}"), principal=admin) for i in range(3)),
        send(text(other.id, "from support")),
        # Read once for the group, but checked for each principal: this agent may not see it.
        send(text(session.id, "not yours"), principal=owner),
        return_exceptions=True,
    )
    assert isinstance(results[4], PermissionDenied)
    assert [r.message.text for r in results[:4] if isinstance(r, SendMessageResult)] == [
        "m0",
        "m1",
        "m2",
        "from support",
    ]
    assert calls["commit"] == 1
    assert calls["sessions.get"] == 2  # one per session, not one per send


async def test_a_group_holds_at_most_max_group_sends(world: World) -> None:
    session = await world.connected_session()
    calls: Counter[str] = Counter()
    send = counted_send(world, calls, max_group=2)
    await asyncio.gather(*(send(text(session.id, f"m{i}")) for i in range(5)))
    assert calls["commit"] == 3
    assert len(world.store.messages) == 5


async def test_a_send_with_media_has_a_unit_of_work_of_its_own(world: World) -> None:
    session = await world.connected_session()
    calls: Counter[str] = Counter()
    send = counted_send(world, calls)
    image = SendMessageCommand(
        session_id=session.id,
        to=TO,
        kind=K.IMAGE,
        media=OutgoingMedia(data=JPEG, mime="image/jpeg"),
    )
    results = await asyncio.gather(
        send(text(session.id, "a")), send(image), send(text(session.id, "b"))
    )
    assert calls["commit"] == 2  # the two texts together, the image alone
    media = (await world.message(results[1].id)).media
    assert media is not None and media.storage_key in world.media.blobs


async def test_pacing_counts_the_sends_ahead_of_it_in_its_group(world: World) -> None:
    session = await world.connected_session()
    results = await asyncio.gather(*(world.send(text(session.id, f"m{i}")) for i in range(31)))
    # As sent one after the other (test_past_the_pacing_budget_a_send_says_it_is_throttled).
    assert [r.throttled for r in results] == [False] * 30 + [True]


async def test_a_caller_that_stops_waiting_before_its_turn_takes_its_send_out_of_the_group(
    world: World,
) -> None:
    session = await world.connected_session()
    sends = [asyncio.ensure_future(world.send(text(session.id, f"m{i}"))) for i in range(3)]
    await asyncio.sleep(0)  # all three are waiting for their group
    sends[1].cancel()
    first, last = await sends[0], await sends[2]
    with pytest.raises(asyncio.CancelledError):
        await sends[1]
    assert sorted(m.text or "" for m in world.store.messages.values()) == ["m0", "m2"]
    assert first.id in world.store.messages and last.id in world.store.messages


# -- check numbers --------------------------------------------------------------------------


async def test_check_numbers_answers_each_number_in_order(world: World) -> None:
    session = await world.connected_session()
    world.fake.known_numbers = {"5566999990001", "5511988887777"}
    numbers = ("+55 66 99999-0001", "garbage", "5511988887777", "5566999990001", "5521912345678")
    checks = await world.check_numbers(CheckNumbersCommand(session_id=session.id, numbers=numbers))
    assert [(c.number, c.exists, c.jid) for c in checks] == [
        ("+55 66 99999-0001", True, Jid.phone("5566999990001")),
        ("garbage", False, None),
        ("5511988887777", True, Jid.phone("5511988887777")),
        ("5566999990001", True, Jid.phone("5566999990001")),
        ("5521912345678", False, None),
    ]
    asked = [n for batch, _ in world.fake.connection(session.id).number_checks for n in batch]
    assert sorted(asked) == ["5511988887777", "5521912345678", "5566999990001"]


async def test_bulk_checks_go_in_small_batches_with_pauses(world: World) -> None:
    world.check_settings = type(world.check_settings)(batch_size=2, gap_min=1.0, gap_max=3.0)
    world.build()
    session = await world.connected_session()
    numbers = tuple(f"55669999900{i:02d}" for i in range(7))
    first = asyncio.create_task(
        world.check_numbers(CheckNumbersCommand(session_id=session.id, numbers=numbers))
    )
    # A second call of the same session waits its turn behind the first one.
    second = asyncio.create_task(
        world.check_numbers(CheckNumbersCommand(session_id=session.id, numbers=numbers[:1]))
    )
    await settle()
    requests = world.fake.connection(session.id).number_checks
    assert len(requests) == 1  # the first batch goes at once, the rest wait
    await world.clock.advance(60)
    assert len(await first) == 7 and len(await second) == 1
    assert [len(batch) for batch, _ in requests] == [2, 2, 2, 1, 1]
    gaps = [(b[1] - a[1]).total_seconds() for a, b in pairwise(requests)]
    assert all(1.0 <= g <= 3.0 for g in gaps)
    assert len(set(gaps)) > 1


async def test_checking_numbers_needs_a_connected_session(world: World) -> None:
    session = await world.new_session()
    with pytest.raises(SessionNotConnected):
        await world.check_numbers(CheckNumbersCommand(session_id=session.id, numbers=("1",)))


async def test_a_send_goes_out_after_a_group_writer_was_cancelled_before_it_ran(
    world: World,
) -> None:
    """An event loop that shuts down cancels the group's writer, perhaps before it ran (and
    before it could clear itself): the next send must not wait for it forever."""
    session = await world.connected_session()
    first = asyncio.ensure_future(world.send(text(session.id, "lost")))
    await asyncio.sleep(0)  # the send waits for a group; its writer has not run yet
    writer = world.send._groups.writer
    assert writer is not None and not writer.done()
    writer.cancel()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    result = await asyncio.wait_for(world.send(text(session.id, "next")), 5)
    assert (await world.message(result.id)).text == "next"
