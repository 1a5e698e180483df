from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from whatsgate.domain.errors import SessionNotRunning
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session
from whatsgate.ports.engine import ContactInfo, ContactsBatch, HistoryBatch, IncomingMessage
from whatsgate.testing import MemoryStore, MemoryUnitOfWork
from whatsgate.usecases.history import (
    ImportHistory,
    ImportHistoryCommand,
    RequestHistorySyncCommand,
    SyncContactsCommand,
    progress_key,
)

from .harness import ALICE, ALICE_LID, BOB, GROUP, World, counting, incoming


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def session(world: World) -> Session:
    return await world.new_session()


def history(
    world: World, count: int, *, days_ago: float = 1, prefix: str = "H"
) -> list[IncomingMessage]:
    """``count`` messages spread over a few chats, oldest first, ``days_ago`` days back."""
    start = world.clock.now() - timedelta(days=days_ago)
    chats = [ALICE, BOB, GROUP]
    return [
        incoming(
            f"{prefix}{i:05d}",
            chat=chats[i % 3],
            sender=BOB if chats[i % 3] == GROUP else None,
            at=start + timedelta(seconds=i),
            text=f"old message {i}",
        )
        for i in range(count)
    ]


async def test_a_batch_of_1200_is_imported_in_three_units_of_work(
    world: World, session: Session
) -> None:
    batch = HistoryBatch(messages=tuple(history(world, 1200)), is_last=True)
    before = world.store.commits
    result = await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    assert (result.stored, result.processed, result.total, result.transactions) == (
        1200,
        1200,
        1200,
        3,
    )
    assert world.store.commits == before + 3
    assert len(world.store.messages) == 1200
    progress = [
        (e.data["processed"], e.data["total"], e.data["done"])
        for e in world.events()
        if e.name == "history.progress"
    ]
    assert progress == [(500, 1200, False), (1000, 1200, False), (1200, 1200, True)]
    # History is not unread, and reopens nothing; previews follow the newest message.
    conversation = await world.conversation(session.id, ALICE)
    assert conversation.unread_count == 0
    assert conversation.last_message_preview == "old message 1197"
    # No message.new flood: the inbox learns through conversation.updated.
    assert world.events("message.new") == []
    assert {e.data["chat"] for e in world.events("conversation.updated")} == {ALICE, BOB, GROUP}


async def test_importing_again_adds_nothing(world: World, session: Session) -> None:
    messages = history(world, 1200)
    batch = HistoryBatch(messages=tuple(messages))
    await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    again = await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    assert (again.stored, again.transactions) == (0, 0)
    # The same messages in another batch (shuffled, with one new) are not stored twice either.
    shuffled = messages[:]
    random.Random(3).shuffle(shuffled)
    other = HistoryBatch(messages=(*shuffled[:700], *history(world, 1, prefix="NEW")))
    result = await world.import_history(ImportHistoryCommand(session_id=session.id, batch=other))
    assert result.stored == 1
    assert len(world.store.messages) == 1201


async def test_messages_older_than_the_window_are_skipped(world: World, session: Session) -> None:
    old = history(world, 10, days_ago=31, prefix="OLD")
    recent = history(world, 10, days_ago=29, prefix="NEW")
    batch = HistoryBatch(messages=(*old, *recent), is_last=True)
    result = await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    assert result.stored == 10
    assert {m.wa_id[:3] for m in world.store.messages.values()} == {"NEW"}
    assert world.events("history.progress")[-1].data == {"processed": 20, "total": 20, "done": True}


async def test_the_window_is_a_setting(session: Session) -> None:
    world = World()
    world.history_settings = type(world.history_settings)(window_days=7)
    world.build()
    sid = (await world.new_session()).id
    batch = HistoryBatch(
        messages=(*history(world, 3, days_ago=8, prefix="A"), *history(world, 3, days_ago=6))
    )
    assert (
        await world.import_history(ImportHistoryCommand(session_id=sid, batch=batch))
    ).stored == 3


class ExplodingUnitOfWork(MemoryUnitOfWork):
    """Fails when the import reaches a given chat: an error in the middle of a chunk."""

    def __init__(self, store: MemoryStore, poison: Jid) -> None:
        self.poison = poison
        super().__init__(store)

    def _reset(self) -> None:
        super()._reset()
        original = self.conversations.get_by_chat

        async def get_by_chat(session_id: str, chat: Jid):  # type: ignore[no-untyped-def]
            if chat == self.poison:
                raise RuntimeError("disk I/O error")
            return await original(session_id, chat)

        self.conversations.get_by_chat = get_by_chat  # type: ignore[method-assign]


async def test_an_error_inside_a_chunk_stores_none_of_it_and_the_batch_resumes(
    world: World, session: Session
) -> None:
    messages = history(world, 1200)
    poison = Jid.parse("5599999999999@s.whatsapp.net")
    # The 750th message, in the middle of the second chunk, is from a chat that breaks the store.
    messages[750] = incoming("POISON", chat=str(poison), at=messages[750].timestamp)
    batch = HistoryBatch(messages=tuple(messages), is_last=True)
    exploding = ImportHistory(lambda: ExplodingUnitOfWork(world.store, poison), world.clock)
    with pytest.raises(RuntimeError, match="disk"):
        await exploding(ImportHistoryCommand(session_id=session.id, batch=batch))
    stored = {m.wa_id for m in world.store.messages.values()}
    assert stored == {m.wa_id for m in messages[:500]}
    assert [e.data["processed"] for e in world.events("history.progress")] == [500]
    assert world.store.cursors[progress_key(session.id, batch)] == 500

    # Handed the batch again (after a restart, the store fixed): it resumes at the second chunk.
    world.build()
    result = await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    assert (result.transactions, result.stored, result.processed) == (2, 700, 1200)
    assert len(world.store.messages) == 1200
    assert [e.data["processed"] for e in world.events("history.progress")] == [500, 1000, 1200]


async def test_history_merges_contacts_and_lid_pairs_without_duplicates(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("LIVE", chat=ALICE_LID, push_name="Alice"))
    batch = HistoryBatch(
        contacts=(ContactInfo(jid=Jid.parse(BOB), name="Bob Smith"),),
        lid_mappings=((Jid.parse(ALICE_LID), Jid.parse(ALICE)),),
    )
    result = await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    assert result.transactions == 1
    alice = await world.contact(session.id, ALICE)
    assert (str(alice.lid), alice.push_name) == (ALICE_LID, "Alice")
    assert (await world.contact(session.id, BOB)).name == "Bob Smith"
    assert len(world.store.contacts) == 2


async def test_each_chunk_looks_contacts_and_conversations_up_in_batches(
    world: World, session: Session
) -> None:
    phones = [f"55119{c:08d}@s.whatsapp.net" for c in range(300)]
    start = world.clock.now() - timedelta(days=1)
    messages = tuple(
        incoming(f"H{i:05d}", chat=phones[i % 300], at=start + timedelta(seconds=i))
        for i in range(1200)
    )
    book = tuple(ContactInfo(jid=Jid.parse(p), name=f"Contact {n}") for n, p in enumerate(phones))
    calls: Counter[str] = Counter()
    use_case = ImportHistory(counting(world.store, calls), world.clock, world.history_settings)
    batch = HistoryBatch(messages=messages, contacts=book, is_last=True)
    result = await use_case(ImportHistoryCommand(session_id=session.id, batch=batch))
    assert (result.stored, result.transactions) == (1200, 3)
    assert len(world.store.contacts) == len(world.store.conversations) == 300
    assert {c.name for c in world.store.contacts.values()} == {f"Contact {n}" for n in range(300)}
    # The address book and the first chunk, then one look-up of each kind per chunk; none
    # per contact or per chat.
    assert calls == {"contacts.get_many": 3, "conversations.get_many_by_chat": 3}


async def test_history_does_not_move_a_preview_backwards(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("LIVE", text="today", at=world.clock.now()))
    batch = HistoryBatch(messages=tuple(history(world, 3)))
    await world.import_history(ImportHistoryCommand(session_id=session.id, batch=batch))
    conversation = await world.conversation(session.id, ALICE)
    assert (conversation.last_message_preview, conversation.unread_count) == ("today", 1)


async def test_history_batches_from_the_engine_are_imported(world: World) -> None:
    session = await world.connected_session()
    await world.fake.emit(session.id, HistoryBatch(messages=tuple(history(world, 5)), is_last=True))
    assert len(world.store.messages) == 5


async def test_request_history_sync_asks_the_live_connection(world: World) -> None:
    session = await world.connected_session()
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    await world.request_history(
        RequestHistorySyncCommand(session_id=session.id, conversation_id=conversation.id, count=80)
    )
    await world.request_history(RequestHistorySyncCommand(session_id=session.id))
    assert world.fake.connection(session.id).history_requests == [
        (Jid.parse(ALICE), 80),
        (None, 50),
    ]


async def test_request_history_sync_needs_a_running_session(world: World, session: Session) -> None:
    with pytest.raises(SessionNotRunning):
        await world.request_history(RequestHistorySyncCommand(session_id=session.id))


async def test_sync_contacts_merges_and_never_duplicates(world: World) -> None:
    session = await world.connected_session()
    await world.receive(session.id, incoming("M1", chat=ALICE_LID, push_name="Alice"))
    world.fake.contacts = [
        ContactInfo(jid=Jid.parse(ALICE), lid=Jid.parse(ALICE_LID), name="Alice Silva"),
        ContactInfo(jid=Jid.parse(BOB), push_name="Bob", business_name="Bob's Bakery"),
    ]
    assert await world.sync_contacts(SyncContactsCommand(session_id=session.id)) == 2
    assert await world.sync_contacts(SyncContactsCommand(session_id=session.id)) == 2
    assert len(world.store.contacts) == 2
    alice = await world.contact(session.id, ALICE_LID)
    assert (str(alice.jid), alice.name, alice.push_name) == (ALICE, "Alice Silva", "Alice")
    bob = await world.contact(session.id, BOB)
    assert bob.business_name == "Bob's Bakery"
    assert [e.data for e in world.events("contacts.synced")] == [{"count": 2}, {"count": 2}]
    # A contacts batch pushed by the engine merges the same way.
    await world.fake.emit(
        session.id, ContactsBatch(contacts=(ContactInfo(jid=Jid.parse(BOB), name="Robert"),))
    )
    assert (await world.contact(session.id, BOB)).name == "Robert"
    assert len(world.store.contacts) == 2
