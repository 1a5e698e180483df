from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from whatsgate.domain.conversation import ConversationStatus
from whatsgate.domain.errors import SessionNotFound, WriteConflict
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import (
    ContactCard,
    Direction,
    Location,
    Media,
    MessageKind,
    MessageStatus,
    Poll,
)
from whatsgate.domain.session import Session
from whatsgate.ports.engine import HistoryBatch
from whatsgate.testing import MemoryUnitOfWork, settle
from whatsgate.usecases._chats import ChatLookup
from whatsgate.usecases.history import ImportHistoryCommand
from whatsgate.usecases.ingest import (
    IncomingMessageCommand,
    IngestSettings,
    ProcessIncomingMessage,
)

from .harness import (
    ALICE,
    ALICE_LID,
    BOB,
    GROUP,
    CountingEveryLookup,
    CountingUnitOfWork,
    World,
    counting,
    failing_commits,
    incoming,
)

K = MessageKind


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def session(world: World) -> Session:
    return await world.new_session()


async def test_a_first_message_creates_contact_and_pending_conversation(
    world: World, session: Session
) -> None:
    result = await world.receive(
        session.id,
        incoming("M1", text="Oi, tudo bem?", push_name="Alice", sender_alt=Jid.parse(ALICE_LID)),
    )
    assert result.created and result.message is not None
    conversation = await world.conversation(session.id, ALICE)
    assert conversation.status is ConversationStatus.PENDING
    assert conversation.unread_count == 1
    assert conversation.last_message_preview == "Oi, tudo bem?"
    assert conversation.last_message_at == result.message.timestamp
    contact = await world.contact(session.id, ALICE_LID)
    assert (str(contact.jid), str(contact.lid), contact.push_name) == (ALICE, ALICE_LID, "Alice")
    stored = await world.message_by_wa_id(session.id, "M1")
    assert (stored.direction, stored.status, stored.conversation_id) == (
        Direction.IN,
        MessageStatus.RECEIVED,
        conversation.id,
    )
    assert [e.name for e in world.events()][-2:] == ["message.new", "conversation.updated"]
    assert world.events("message.new")[-1].data["text"] == "Oi, tudo bem?"
    assert world.events("conversation.updated")[-1].data["unread_count"] == 1


async def test_the_same_message_twice_is_stored_and_counted_once(
    world: World, session: Session
) -> None:
    first = await world.receive(session.id, incoming("M1"))
    again = await world.receive(session.id, incoming("M1"))
    # ... and twice within one group commit.
    both = await asyncio.gather(
        world.receive(session.id, incoming("M2")), world.receive(session.id, incoming("M2"))
    )
    assert first.created and not again.created
    assert sorted(r.created for r in both) == [False, True]
    assert len(world.store.messages) == 2
    assert (await world.conversation(session.id, ALICE)).unread_count == 2
    assert len(world.events("message.new")) == 2


@pytest.mark.parametrize(
    ("kind", "fields", "preview"),
    [
        (K.TEXT, {"text": "plain"}, "plain"),
        (
            K.IMAGE,
            {
                "text": "a caption",
                "media": Media(mime="image/jpeg", size=2048, sha256="ab", engine_ref="ref-1"),
            },
            "a caption",
        ),
        (K.VIDEO, {"text": None, "media": Media(mime="video/mp4", duration_seconds=9)}, "[video]"),
        (K.AUDIO, {"text": None, "media": Media(mime="audio/mpeg")}, "[audio]"),
        (K.VOICE, {"text": None, "media": Media(mime="audio/ogg; codecs=opus")}, "[voice]"),
        (
            K.DOCUMENT,
            {"text": None, "media": Media(mime="application/pdf", file_name="boleto.pdf")},
            "[document] boleto.pdf",
        ),
        (K.STICKER, {"text": None, "media": Media(mime="image/webp")}, "[sticker]"),
        (
            K.LOCATION,
            {"text": None, "location": Location(latitude=-15.6, longitude=-56.1, name="Cuiabá")},
            "📍 Cuiabá",
        ),
        (
            K.CONTACT,
            {"text": None, "contact": ContactCard(display_name="Bob", vcard="BEGIN:VCARD")},
            "👤 Bob",
        ),
        (
            K.POLL,
            {"text": None, "poll": Poll(question="Lunch?", options=("yes", "no"))},
            "📊 Lunch?",
        ),
        (K.UNSUPPORTED, {"text": None, "unsupported_type": "eventMessage"}, "[unsupported]"),
    ],
)
async def test_every_kind_is_stored_with_what_it_carries(
    world: World, session: Session, kind: MessageKind, fields: dict[str, object], preview: str
) -> None:
    await world.receive(session.id, incoming("M1", kind=kind, **fields))  # type: ignore[arg-type]
    stored = await world.message_by_wa_id(session.id, "M1")
    assert stored.kind is kind
    for name, value in fields.items():
        assert getattr(stored, name) == value
    assert (await world.conversation(session.id, ALICE)).last_message_preview == preview
    published = world.events("message.new")[-1].data
    assert published["type"] == str(kind)
    if "media" in fields:
        assert published["media"]["mime"] == stored.media.mime  # type: ignore[union-attr]
        assert published["media"]["stored"] is False  # bytes come later, on request


async def test_an_unsupported_message_without_a_type_is_still_kept(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1", kind=K.UNSUPPORTED, text=None))
    assert (await world.message_by_wa_id(session.id, "M1")).unsupported_type == "unknown"


async def test_a_group_message_keeps_the_sender_apart_from_the_chat(
    world: World, session: Session
) -> None:
    await world.receive(
        session.id,
        incoming("G1", chat=GROUP, sender=BOB, push_name="Bob", chat_name="Family", text="hi all"),
    )
    conversation = await world.conversation(session.id, GROUP)
    assert conversation.is_group and conversation.name == "Family"
    assert conversation.unread_count == 1
    stored = await world.message_by_wa_id(session.id, "G1")
    assert (str(stored.chat), str(stored.sender), stored.push_name) == (GROUP, BOB, "Bob")
    assert (await world.contact(session.id, BOB)).push_name == "Bob"
    async with world.uow() as uow:
        assert await uow.conversations.get_by_chat(session.id, Jid.parse(BOB)) is None


async def test_a_reply_keeps_the_quoted_message_id(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("M1"))
    await world.receive(session.id, incoming("M2", text="answer", quoted_wa_id="M1"))
    assert (await world.message_by_wa_id(session.id, "M2")).quoted_wa_id == "M1"


async def test_a_message_sent_from_the_phone_counts_as_outbound(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1", push_name="Alice"))
    me = "5511900000000@s.whatsapp.net"
    await world.receive(
        session.id,
        incoming("M2", sender=me, from_me=True, push_name="Me myself", text="sent from phone"),
    )
    stored = await world.message_by_wa_id(session.id, "M2")
    assert (stored.direction, stored.status, stored.push_name) == (
        Direction.OUT,
        MessageStatus.SENT,
        None,
    )
    conversation = await world.conversation(session.id, ALICE)
    assert conversation.unread_count == 1
    assert conversation.last_message_preview == "sent from phone"
    # The account's own push name never lands on the contact.
    assert (await world.contact(session.id, ALICE)).push_name == "Alice"


async def test_a_reaction_decorates_its_target_without_counting_unread(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1", text="lunch?"))
    await world.receive(session.id, incoming("R1", kind=K.REACTION, text="👍", target_wa_id="M1"))
    target = await world.message_by_wa_id(session.id, "M1")
    assert target.reactions == {ALICE: "👍"}
    conversation = await world.conversation(session.id, ALICE)
    assert (conversation.unread_count, conversation.last_message_preview) == (1, "lunch?")
    assert (await world.message_by_wa_id(session.id, "R1")).kind is K.REACTION
    assert world.events("message.updated")[-1].data["reactions"] == {ALICE: "👍"}
    # Removing the reaction (an empty emoji) takes it off.
    await world.receive(session.id, incoming("R2", kind=K.REACTION, text="", target_wa_id="M1"))
    assert (await world.message_by_wa_id(session.id, "M1")).reactions == {}


async def test_edits_and_revokes_change_their_target(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("M1", text="see you at 5"))
    later = world.clock.now()
    await world.receive(
        session.id, incoming("E1", text="see you at 6", target_wa_id="M1", is_edit=True, at=later)
    )
    edited = await world.message_by_wa_id(session.id, "M1")
    assert (edited.text, edited.edited_at) == ("see you at 6", later)
    assert (await world.conversation(session.id, ALICE)).last_message_preview == "see you at 6"
    assert world.events("message.updated")[-1].data["text"] == "see you at 6"

    await world.receive(
        session.id,
        incoming("X1", text=None, target_wa_id="M1", is_revoke=True, at=later + timedelta(1)),
    )
    await world.receive(  # the same revoke again changes nothing more
        session.id,
        incoming("X1", text=None, target_wa_id="M1", is_revoke=True, at=later + timedelta(1)),
    )
    revoked = await world.message_by_wa_id(session.id, "M1")
    assert revoked.revoked_at is not None
    assert world.events("message.updated")[-1].data["revoked"] is True
    assert len(world.events("message.updated")) == 2
    assert (await world.conversation(session.id, ALICE)).last_message_preview == (
        "(message deleted)"
    )
    # Edits and revokes are not messages of their own, and do not count unread.
    assert {m.wa_id for m in world.store.messages.values()} == {"M1"}
    assert (await world.conversation(session.id, ALICE)).unread_count == 1


async def test_an_edit_of_an_unknown_message_is_ignored(world: World, session: Session) -> None:
    result = await world.receive(
        session.id, incoming("E1", text="new", target_wa_id="NOPE", is_edit=True)
    )
    assert result.message is None and not result.created
    assert world.store.messages == {} and world.store.conversations == {}


async def test_a_chat_first_known_by_its_lid_moves_to_the_phone_number(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1", chat=ALICE_LID, push_name="Alice"))
    await world.receive(
        session.id, incoming("M2", chat=ALICE_LID, chat_alt=Jid.parse(ALICE), text="again")
    )
    conversation = await world.conversation(session.id, ALICE)
    assert conversation.unread_count == 2
    assert len(world.store.conversations) == 1
    contact = await world.contact(session.id, ALICE)
    assert (str(contact.jid), str(contact.lid)) == (ALICE, ALICE_LID)
    assert len(world.store.contacts) == 1
    assert str((await world.message_by_wa_id(session.id, "M2")).chat) == ALICE


async def test_a_lid_chat_learning_its_phone_joins_an_existing_phone_conversation(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1"))  # Alice, by her phone number
    # In one unit of work: a message by her LID alone, then one that tells both apart.
    batch = HistoryBatch(
        messages=(
            incoming("M2", chat=ALICE_LID, at=world.clock.now()),
            incoming("M3", chat=ALICE_LID, chat_alt=Jid.parse(ALICE), at=world.clock.now()),
        )
    )
    await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    phone_chats = [c for c in world.store.conversations.values() if str(c.chat) == ALICE]
    assert len(phone_chats) == 1  # never a second conversation with the same chat
    assert str((await world.message_by_wa_id(session.id, "M3")).chat) == ALICE
    assert (await world.message_by_wa_id(session.id, "M3")).conversation_id == phone_chats[0].id


async def test_a_run_of_one_chat_follows_its_chat_when_it_moves_mid_run(
    world: World, session: Session
) -> None:
    """A chat's messages in a row resolve their conversation once, until one says something
    new: the run by the LID alone, the message that gives the phone number, then the LID
    alone again all land in the one conversation, now the phone number's."""
    now = world.clock.now()
    lid_only = [incoming(f"L{i}", chat=ALICE_LID, at=now) for i in range(3)]
    both = incoming("B", chat=ALICE_LID, chat_alt=Jid.parse(ALICE), at=now)
    again = [incoming(f"A{i}", chat=ALICE_LID, at=now) for i in range(3)]
    batch = HistoryBatch(messages=(*lid_only, both, *again, incoming("C", chat=BOB, at=now)))
    await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    conversation = await world.conversation(session.id, ALICE)
    for wa_id in ("L0", "L2", "B", "A0", "A2"):
        message = await world.message_by_wa_id(session.id, wa_id)
        assert message.conversation_id == conversation.id, wa_id
        assert str(message.chat) == (ALICE_LID if wa_id.startswith("L") else ALICE), wa_id
    bob = await world.conversation(session.id, BOB)
    assert (await world.message_by_wa_id(session.id, "C")).conversation_id == bob.id
    assert len(world.store.conversations) == 2
    assert len(world.store.contacts) == 2


async def test_a_closed_conversation_reopens_when_the_contact_writes(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1"))
    async with world.uow() as uow:
        conversation = await uow.conversations.get_by_chat(session.id, Jid.parse(ALICE))
        assert conversation is not None
        conversation.set_status(ConversationStatus.CLOSED, world.clock.now())
        await uow.conversations.save(conversation)
        await uow.commit()
    await world.receive(session.id, incoming("M2"))
    assert (await world.conversation(session.id, ALICE)).status is ConversationStatus.PENDING


async def test_status_broadcasts_are_not_chats(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("S1", chat="status@broadcast", sender=ALICE))
    assert world.store.messages == {} and world.store.conversations == {}


async def test_messages_arriving_together_share_one_unit_of_work(
    world: World, session: Session
) -> None:
    before = world.store.commits
    results = await asyncio.gather(
        *(world.receive(session.id, incoming(f"M{i}", chat=BOB)) for i in range(40))
    )
    assert all(r.created for r in results)
    assert world.store.commits == before + 1
    assert (await world.conversation(session.id, BOB)).unread_count == 40
    # One conversation.updated for the whole group, after the forty message.new.
    names = [e.name for e in world.events()]
    assert names[-41:] == ["message.new"] * 40 + ["conversation.updated"]


async def test_the_group_commit_window_gathers_messages_on_the_clock(session: Session) -> None:
    world = World(ingest_settings=IngestSettings(group_window=0.005))
    sid = (await world.new_session()).id
    before = world.store.commits
    first = asyncio.ensure_future(world.receive(sid, incoming("M1")))
    await settle()
    second = asyncio.ensure_future(world.receive(sid, incoming("M2")))
    await world.clock.advance(0.004)
    third = asyncio.ensure_future(world.receive(sid, incoming("M3")))
    await settle()
    assert not first.done() and world.store.commits == before  # still inside the window
    await world.clock.advance(0.001)
    assert all(f.done() and f.result().created for f in (first, second, third))
    assert world.store.commits == before + 1
    assert len(world.store.messages) == 3


async def test_a_group_commit_caps_its_unit_of_work_size(session: Session) -> None:
    world = World(ingest_settings=IngestSettings(group_window=0, max_group=10))
    sid = (await world.new_session()).id
    before = world.store.commits
    await asyncio.gather(*(world.receive(sid, incoming(f"M{i}")) for i in range(25)))
    assert world.store.commits == before + 3
    assert len(world.store.messages) == 25


async def test_a_bad_message_in_a_group_fails_alone(world: World, session: Session) -> None:
    results = await asyncio.gather(
        world.receive(session.id, incoming("M1")),
        world.ingest(IncomingMessageCommand(session_id="no-such-session", message=incoming("X"))),
        world.receive(session.id, incoming("M2")),
        return_exceptions=True,
    )
    assert isinstance(results[1], SessionNotFound)
    assert {m.wa_id for m in world.store.messages.values()} == {"M1", "M2"}
    assert (await world.conversation(session.id, ALICE)).unread_count == 2


async def test_a_message_whose_unit_of_work_lost_a_race_runs_again(
    world: World, session: Session
) -> None:
    """The database ended its unit of work for another's sake (``WriteConflict``: a deadlock
    on PostgreSQL), which wrote nothing: the message is stored on the next run, not lost."""
    failures = [WriteConflict("deadlock detected")]

    ingest = ProcessIncomingMessage(failing_commits(world.store, failures), world.clock)
    result = await ingest(IncomingMessageCommand(session_id=session.id, message=incoming("M1")))
    assert (result.created, failures) == (True, [])
    assert (await world.conversation(session.id, ALICE)).unread_count == 1


async def test_the_engine_listener_returns_only_once_the_message_is_committed(
    world: World,
) -> None:
    session = await world.connected_session()
    await world.fake.emit(session.id, incoming("M1", text="through the engine"))
    # No settling: the emit returned, so the message is already committed.
    assert (await world.message_by_wa_id(session.id, "M1")).text == "through the engine"


async def test_an_engine_message_that_cannot_be_stored_is_not_acknowledged(
    world: World,
) -> None:
    session = await world.connected_session()
    async with world.uow() as uow:
        await uow.sessions.delete(session.id)
        await uow.commit()
    with pytest.raises(SessionNotFound):
        await world.fake.emit(session.id, incoming("M1"))


async def test_one_group_commit_serves_several_sessions(world: World, session: Session) -> None:
    other = await world.new_session("support")
    before = world.store.commits
    await asyncio.gather(
        world.receive(session.id, incoming("M1", push_name="Alice")),
        world.receive(other.id, incoming("M1", push_name="Alice")),
        world.receive(other.id, incoming("M2", chat=GROUP, sender=ALICE)),
    )
    assert world.store.commits == before + 1
    assert (await world.conversation(session.id, ALICE)).unread_count == 1
    assert (await world.conversation(other.id, ALICE)).unread_count == 1
    assert (await world.conversation(other.id, GROUP)).unread_count == 1
    # Contacts are per session: one Alice in each, never two in one.
    assert sorted(c.session_id for c in world.store.contacts.values()) == sorted(
        [session.id, other.id]
    )


class SlowCommitUnitOfWork(MemoryUnitOfWork):
    """A database whose commits take as long as the test says."""

    gate: asyncio.Event

    async def commit(self) -> None:
        await self.gate.wait()
        await super().commit()


async def test_messages_arriving_during_a_commit_form_the_next_group(world: World) -> None:
    sid = (await world.new_session()).id
    gate = asyncio.Event()

    def slow() -> MemoryUnitOfWork:
        uow = SlowCommitUnitOfWork(world.store)
        uow.gate = gate
        return uow

    ingest = ProcessIncomingMessage(slow, world.clock, IngestSettings(group_window=0))
    before = world.store.commits
    first = asyncio.ensure_future(
        ingest(IncomingMessageCommand(session_id=sid, message=incoming("M0")))
    )
    await settle()  # M0's unit of work is committing
    rest = [
        asyncio.ensure_future(
            ingest(IncomingMessageCommand(session_id=sid, message=incoming(f"M{i}")))
        )
        for i in range(1, 6)
    ]
    await settle()
    assert not first.done() and world.store.commits == before
    gate.set()
    await asyncio.gather(first, *rest)
    assert world.store.commits == before + 2
    assert (await world.conversation(sid, ALICE)).unread_count == 6


async def test_a_group_looks_contacts_and_conversations_up_once_whatever_its_size(
    world: World, session: Session
) -> None:
    per_size = []
    phones: list[str] = []
    for size, chats in ((12, 4), (240, 60)):
        direct = [f"55119{size:04d}{c:04d}@s.whatsapp.net" for c in range(chats // 2)]
        groups = [f"1203630{size:04d}{c:04d}@g.us" for c in range(chats // 2)]
        phones += direct
        known = direct[::2] + groups[::2]
        for n, chat in enumerate(known):  # half the chats, and their contacts, exist already
            await world.receive(session.id, incoming(f"K{size}-{n}", chat=chat, sender=direct[0]))
        calls: Counter[str] = Counter()
        ingest = ProcessIncomingMessage(
            counting(world.store, calls), world.clock, IngestSettings(group_window=0)
        )
        everything = direct + groups
        results = await asyncio.gather(
            *(
                ingest(
                    IncomingMessageCommand(
                        session_id=session.id,
                        message=incoming(
                            f"B{size}-{i}",
                            chat=everything[i % chats],
                            sender=direct[(i + 1) % len(direct)],
                        ),
                    )
                )
                for i in range(size)
            )
        )
        assert all(r.created for r in results)
        for chat in everything:
            unread = (await world.conversation(session.id, chat)).unread_count
            assert unread == size // chats + (chat in known)
        # One contact per phone number, never two.
        assert sorted(str(c.jid) for c in world.store.contacts.values()) == sorted(phones)
        per_size.append(dict(calls))
    # One batched query each, for 12 messages over 4 chats as for 240 over 60.
    expected = {
        "contacts.get_many_of_sessions": 1,
        "conversations.get_many_by_chat_of_sessions": 1,
    }
    assert per_size == [expected, expected]


async def test_a_group_from_many_sessions_is_looked_up_once_for_all_of_them(
    world: World,
) -> None:
    """Engines hand a session's messages over one at a time, so a group holds one message of
    each of many sessions: its look-ups must not cost a round trip per session."""
    sessions = [await world.new_session(f"s{i}") for i in range(3)]
    await world.receive(sessions[0].id, incoming("M0", chat=ALICE))
    calls: Counter[str] = Counter()
    ingest = ProcessIncomingMessage(
        lambda: CountingEveryLookup(world.store, calls),
        world.clock,
        IngestSettings(group_window=0),
    )
    results = await asyncio.gather(
        *(
            ingest(IncomingMessageCommand(session_id=s.id, message=incoming(wa_id, chat=chat)))
            for s in sessions
            for wa_id, chat in (("M0", ALICE), ("M1", BOB))
        )
    )
    # M0 is stored already in the first session only: the same WhatsApp id is new elsewhere.
    assert [r.created for r in results] == [False, True, True, True, True, True]
    for s in sessions:
        assert (await world.conversation(s.id, ALICE)).unread_count == 1
        assert (await world.conversation(s.id, BOB)).unread_count == 1
    contacts = sorted((c.session_id, str(c.jid)) for c in world.store.contacts.values())
    assert contacts == sorted((s.id, chat) for s in sessions for chat in (ALICE, BOB))
    assert dict(calls) == {
        "sessions.get_many": 1,
        "messages.existing_wa_ids_of_sessions": 1,
        "contacts.get_many_of_sessions": 1,
        "conversations.get_many_by_chat_of_sessions": 1,
    }


async def test_the_lookup_asks_the_repositories_only_for_what_it_did_not_load(
    world: World, session: Session
) -> None:
    await world.receive(
        session.id, incoming("M1", sender_alt=Jid.parse(ALICE_LID), push_name="Alice")
    )
    stored = await world.conversation(session.id, ALICE)
    calls: Counter[str] = Counter()
    async with CountingUnitOfWork(world.store, calls) as uow:
        lookup = ChatLookup(uow)
        # Asked by her LID: her contact, and the conversation with her phone number, load.
        await lookup.load(session.id, [Jid.parse(ALICE_LID), Jid.parse(BOB)])
        alice = await lookup.contact(session.id, Jid.parse(ALICE_LID))
        conversation = await lookup.conversation(session.id, Jid.parse(ALICE))
        assert await lookup.contact(session.id, Jid.parse(BOB)) is None
        loaded = dict(calls)
        # Not loaded: asked once, then remembered (found or not).
        for _ in range(2):
            assert await lookup.contact(session.id, Jid.parse(GROUP)) is None
            assert await lookup.conversation(session.id, Jid.parse(GROUP)) is None
    assert alice is not None and str(alice.jid) == ALICE
    assert conversation is not None and conversation.id == stored.id
    assert loaded == {"contacts.get_many": 1, "conversations.get_many_by_chat": 1}
    assert calls == {
        "contacts.get_many": 1,
        "conversations.get_many_by_chat": 1,
        "contacts.get_by_jid": 1,
        "conversations.get_by_chat": 1,
    }


async def test_the_contact_keeps_the_push_name_of_the_last_message(
    world: World, session: Session
) -> None:
    names = ["Alice", "Alice", "Ali", "Alice", "Alice"]
    await asyncio.gather(
        *(
            world.receive(session.id, incoming(f"M{i}", chat=GROUP, sender=ALICE, push_name=n))
            for i, n in enumerate(names)
        )
    )
    assert (await world.contact(session.id, ALICE)).push_name == "Alice"
    await world.receive(session.id, incoming("M9", chat=GROUP, sender=ALICE, push_name="Ali"))
    assert (await world.contact(session.id, ALICE)).push_name == "Ali"


async def test_a_message_is_stored_after_a_group_writer_was_cancelled_before_it_ran(
    world: World, session: Session
) -> None:
    """An event loop that shuts down cancels the group's writer, perhaps before it ran (and
    before it could clear itself): the next message must not wait for it forever."""
    first = asyncio.ensure_future(world.receive(session.id, incoming("LOST")))
    await asyncio.sleep(0)  # the message waits for a group; its writer has not run yet
    writer = world.ingest._groups.writer
    assert writer is not None and not writer.done()
    writer.cancel()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(world.receive(session.id, incoming("NEXT")), 5)
    # The first message is stored too: the next group writes what was handed over (ingest
    # is idempotent, so one the engine delivers again is stored once).
    assert sorted(m.wa_id or "" for m in world.store.messages.values()) == ["LOST", "NEXT"]
