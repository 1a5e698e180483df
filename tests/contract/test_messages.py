"""MessageRepository: idempotent add_new, updates by save, pages oldest-to-newest."""

from __future__ import annotations

from tests.contract.builders import World, add_session, at, message, seed
from tests.contract.conftest import Backend
from whatsgate.domain.message import Direction, Message, MessageStatus
from whatsgate.ports.repositories import Page


async def test_add_new_inserts_only_unseen_wa_ids(backend: Backend) -> None:
    world = await seed(backend.uow)
    first = [message(world, "c1", f"W{n}", at(n)) for n in range(3)]
    async with backend.uow() as uow:
        inserted = await uow.messages.add_new(first)
        await uow.commit()
    assert inserted == first

    again = message(world, "c1", "W1", at(1), text="a redelivery")
    twice_a = message(world, "c1", "W9", at(9), text="first copy")
    twice_b = message(world, "c1", "W9", at(9), text="second copy")
    no_wa_id = [message(world, "c1", None, at(10)), message(world, "c1", None, at(11))]
    async with backend.uow() as uow:
        inserted = await uow.messages.add_new([again, twice_a, twice_b, *no_wa_id])
        await uow.commit()
    assert [m.id for m in inserted] == [twice_a.id, *(m.id for m in no_wa_id)]

    async with backend.uow() as uow:
        kept = await uow.messages.get_by_wa_id(world.session_id, "W1")
        w9 = await uow.messages.get_by_wa_id(world.session_id, "W9")
        assert await uow.messages.get(again.id) is None
        assert await uow.messages.get(twice_b.id) is None
        existing = await uow.messages.existing_wa_ids(world.session_id, ["W0", "W9", "nope"])
    assert kept is not None and kept.id == first[1].id and kept.text == "text W1"
    assert w9 is not None and w9.text == "first copy"
    assert existing == {"W0", "W9"}


async def test_add_new_sees_the_unit_of_works_own_inserts(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        assert len(await uow.messages.add_new([message(world, "c1", "A", at(1))])) == 1
        assert await uow.messages.add_new([message(world, "c1", "A", at(1))]) == []
        assert await uow.messages.add_new([]) == []
        await uow.commit()


async def test_same_wa_id_in_two_sessions_is_two_messages(backend: Backend) -> None:
    world = await seed(backend.uow)
    other = World(world.organization, world.admin, await add_session(backend.uow, world, "B"))
    async with backend.uow() as uow:
        one = await uow.messages.add_new([message(world, "c1", "SAME", at(1))])
        two = await uow.messages.add_new([message(other, "c2", "SAME", at(1))])
        await uow.commit()
    assert len(one) == len(two) == 1
    async with backend.uow() as uow:
        assert await uow.messages.existing_wa_ids(other.session_id, ["SAME"]) == {"SAME"}


async def test_save_updates_status_edit_and_reactions(backend: Backend) -> None:
    world = await seed(backend.uow)
    m = message(world, "c1", "W1", at(1), status=MessageStatus.SENT)
    async with backend.uow() as uow:
        await uow.messages.add_new([m])
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.messages.get(m.id)
        assert got is not None
        assert got.advance_status(MessageStatus.READ)
        got.apply_edit("edited", at(5))
        got.apply_reaction(world.session.jid or m.chat, "😂")
        await uow.messages.save(got)
        await uow.commit()
    async with backend.uow() as uow:
        saved = await uow.messages.get(m.id)
    assert saved is not None
    assert (saved.status, saved.text, saved.edited_at) == (MessageStatus.READ, "edited", at(5))
    assert saved.reactions == {str(m.chat): "😂"}


async def _pages(backend: Backend, conversation_id: str, limit: int) -> list[Page[Message]]:
    pages: list[Page[Message]] = []
    before: str | None = None
    async with backend.uow() as uow:
        while True:
            page = await uow.messages.list_for_conversation(
                conversation_id, before=before, limit=limit
            )
            pages.append(page)
            if page.next_cursor is None:
                return pages
            before = page.next_cursor


async def test_pages_oldest_to_newest_walking_back_with_before(backend: Backend) -> None:
    world = await seed(backend.uow)
    # Three at one instant (the id orders them), the rest a second apart; another chat mixed in.
    same = [message(world, "c1", f"S{n}", at(50)) for n in range(3)]
    spread = [message(world, "c1", f"T{n}", at(n * 10)) for n in range(7)]
    elsewhere = [message(world, "c2", f"X{n}", at(n)) for n in range(4)]
    async with backend.uow() as uow:
        await uow.messages.add_new([*spread, *elsewhere, *same])
        await uow.commit()

    pages = await _pages(backend, "c1", limit=4)

    ordered = sorted(same + spread, key=lambda m: (m.timestamp, m.id))
    assert [m.id for m in pages[0].items] == [m.id for m in ordered[-4:]]  # the newest page
    for page in pages:
        keys = [(m.timestamp, m.id) for m in page.items]
        assert keys == sorted(keys)  # each page reads oldest to newest
    walked = [m.id for page in reversed(pages) for m in page.items]
    assert walked == [m.id for m in ordered]
    assert [len(p.items) for p in pages] == [4, 4, 2]


async def test_empty_conversation_and_zero_limit(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        await uow.messages.add_new([message(world, "c1", "A", at(1))])
        await uow.commit()
    async with backend.uow() as uow:
        empty = await uow.messages.list_for_conversation("nothing-here")
        zero = await uow.messages.list_for_conversation("c1", limit=0)
    assert (empty.items, empty.next_cursor) == ([], None)
    assert (zero.items, zero.next_cursor) == ([], None)


async def test_get_many_and_save_many_read_and_write_several_at_once(backend: Backend) -> None:
    world = await seed(backend.uow)
    queued = {"direction": Direction.OUT, "status": MessageStatus.QUEUED}
    messages = [message(world, "c1", None, at(n), text=f"out {n}", **queued) for n in range(3)]
    async with backend.uow() as uow:
        await uow.messages.save_many(messages)
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.messages.get_many([messages[1].id, "nope", messages[2].id])
        assert sorted(m.id for m in got) == sorted([messages[1].id, messages[2].id])
        assert await uow.messages.get_many([]) == []
        for m in got:
            m.wa_id = f"W-{m.text}"
            assert m.advance_status(MessageStatus.SENT)
        await uow.messages.save_many(got)
        await uow.messages.save_many([])
        await uow.commit()
    async with backend.uow() as uow:
        stored = {m.id: m for m in await uow.messages.get_many([m.id for m in messages])}
    assert [(stored[m.id].status, stored[m.id].wa_id) for m in messages] == [
        (MessageStatus.QUEUED, None),
        (MessageStatus.SENT, "W-out 1"),
        (MessageStatus.SENT, "W-out 2"),
    ]
