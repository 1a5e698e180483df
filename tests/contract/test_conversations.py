"""ConversationRepository: the inbox query (filters, text, newest first, cursor pages)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.contract.builders import (
    World,
    add_session,
    at,
    contact,
    conversation,
    full_conversation,
    phone,
    seed,
)
from tests.contract.conftest import Backend
from whatsgate.domain.conversation import Conversation, ConversationStatus
from whatsgate.domain.errors import InvalidCursor
from whatsgate.domain.jid import Jid
from whatsgate.domain.pagination import encode_cursor
from whatsgate.ports.repositories import ConversationQuery, ConversationView, Page


async def _pages(backend: Backend, query: ConversationQuery) -> list[Page[Conversation]]:
    pages: list[Page[Conversation]] = []
    cursor: str | None = None
    async with backend.uow() as uow:
        while True:
            q = ConversationQuery(
                session_id=query.session_id,
                status=query.status,
                assignee_id=query.assignee_id,
                unread_only=query.unread_only,
                text=query.text,
                cursor=cursor,
                limit=query.limit,
            )
            page = await uow.conversations.search(q)
            pages.append(page)
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor


async def _store(backend: Backend, *items: Conversation) -> None:
    async with backend.uow() as uow:
        await uow.conversations.save_many(list(items))
        await uow.commit()


async def test_newest_first_across_pages_with_equal_times(backend: Backend) -> None:
    world = await seed(backend.uow)
    # Five share one time, so only the id orders them; two never had a message.
    same = [conversation(world, phone(n), last_message_at=at(100)) for n in range(5)]
    older = [conversation(world, phone(10 + n), last_message_at=at(50 - n)) for n in range(3)]
    quiet = [conversation(world, phone(20 + n), created_at=at(75 + n)) for n in range(2)]
    everything = same + older + quiet
    await _store(backend, *everything)

    pages = await _pages(backend, ConversationQuery(session_id=world.session_id, limit=3))

    got = [c.id for page in pages for c in page.items]
    expected = sorted(
        everything, key=lambda c: (c.last_message_at or c.created_at, c.id), reverse=True
    )
    assert got == [c.id for c in expected]
    assert [len(p.items) for p in pages] == [3, 3, 3, 1]
    assert pages[-1].next_cursor is None


async def test_exact_multiple_of_the_limit_ends_without_an_empty_page(backend: Backend) -> None:
    world = await seed(backend.uow)
    await _store(backend, *[conversation(world, phone(n), last_message_at=at(n)) for n in range(4)])
    pages = await _pages(backend, ConversationQuery(session_id=world.session_id, limit=2))
    assert [len(p.items) for p in pages] == [2, 2]


async def test_filters_status_assignee_unread(backend: Backend) -> None:
    world = await seed(backend.uow)
    other = await add_session(backend.uow, world, "Other")
    a = conversation(world, phone(1), status=ConversationStatus.ACTIVE, assignee_id="u1")
    b = conversation(world, phone(2), status=ConversationStatus.ACTIVE, assignee_id="u2")
    c = conversation(world, phone(3), status=ConversationStatus.CLOSED, assignee_id="u1")
    d = conversation(world, phone(4), unread_count=2, last_message_at=at(9))
    elsewhere = conversation(
        World(world.organization, world.admin, other), phone(1), unread_count=1
    )
    await _store(backend, a, b, c, d, elsewhere)

    async def ids(**kw: object) -> set[str]:
        async with backend.uow() as uow:
            page = await uow.conversations.search(
                ConversationQuery(session_id=world.session_id, **kw)  # type: ignore[arg-type]
            )
        return {x.id for x in page.items}

    assert await ids() == {a.id, b.id, c.id, d.id}
    assert await ids(status=ConversationStatus.ACTIVE) == {a.id, b.id}
    assert await ids(status=ConversationStatus.PENDING) == {d.id}
    assert await ids(assignee_id="u1") == {a.id, c.id}
    assert await ids(status=ConversationStatus.CLOSED, assignee_id="u1") == {c.id}
    assert await ids(unread_only=True) == {d.id}


async def test_filtered_pages_newest_first(backend: Backend) -> None:
    world = await seed(backend.uow)
    mine = [
        conversation(world, phone(n), assignee_id="u1", last_message_at=at(n % 3)) for n in range(7)
    ]
    theirs = [
        conversation(world, phone(10 + n), assignee_id="u2", last_message_at=at(n))
        for n in range(3)
    ]
    await _store(backend, *mine, *theirs)
    pages = await _pages(
        backend, ConversationQuery(session_id=world.session_id, assignee_id="u1", limit=2)
    )
    got = [c.id for p in pages for c in p.items]
    expected = sorted(mine, key=lambda c: (c.last_message_at or c.created_at, c.id), reverse=True)
    assert got == [c.id for c in expected]


async def test_text_matches_name_chat_or_contact_names(backend: Backend) -> None:
    world = await seed(backend.uow)
    named = conversation(world, phone(1), name="Ótica Central")
    by_number = conversation(world, phone(2))
    lid_chat = Jid("271600000077", "lid")
    via_contact = conversation(world, phone(3))
    via_lid_contact = conversation(world, lid_chat)
    nobody = conversation(world, phone(4), name="Padaria")
    await _store(backend, named, by_number, via_contact, via_lid_contact, nobody)
    async with backend.uow() as uow:
        await uow.contacts.save_many(
            [
                contact(world, phone(3), name="Beatriz ÓTICA"),
                contact(world, phone(5), lid=lid_chat, push_name="ótica do bairro"),
            ]
        )
        await uow.commit()

    async with backend.uow() as uow:
        otica = await uow.conversations.search(
            ConversationQuery(session_id=world.session_id, text="óTiCa")
        )
        number = await uow.conversations.search(
            ConversationQuery(session_id=world.session_id, text=phone(2).user)
        )
    assert {c.id for c in otica.items} == {named.id, via_contact.id, via_lid_contact.id}
    assert [c.id for c in number.items] == [by_number.id]


async def test_a_bad_cursor_is_a_domain_error(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        with pytest.raises(InvalidCursor):
            await uow.conversations.search(
                ConversationQuery(session_id=world.session_id, cursor="not a cursor!")
            )


async def test_save_many_with_one_conversation_twice_keeps_the_last(backend: Backend) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1))
    async with backend.uow() as uow:
        await uow.conversations.save(chat)
        await uow.commit()
    first = conversation(world, phone(1), id=chat.id, unread_count=1)
    last = conversation(world, phone(1), id=chat.id, unread_count=2)
    async with backend.uow() as uow:
        await uow.conversations.save_many([first, last])
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.conversations.get(chat.id)
    assert stored is not None and stored.unread_count == 2


async def test_get_many_by_chat_finds_the_sessions_conversations_in_id_order(
    backend: Backend,
) -> None:
    world = await seed(backend.uow)
    other = await add_session(backend.uow, world, "Other")
    group = Jid.group("120363000000000009")
    wanted = [conversation(world, phone(1)), conversation(world, group)]
    elsewhere = conversation(world, phone(2))
    elsewhere.session_id = other.id
    await _store(backend, *wanted, conversation(world, phone(3)), elsewhere)
    async with backend.uow() as uow:
        found = await uow.conversations.get_many_by_chat(
            world.session_id, [group, phone(1), phone(1), phone(2), phone(4)]
        )
        found[0].name = "changed, not saved"
        again = await uow.conversations.get_many_by_chat(world.session_id, [group, phone(1)])
        assert await uow.conversations.get_many_by_chat(world.session_id, []) == []
    assert [c.id for c in found] == sorted(c.id for c in wanted)
    assert [c.name for c in again] == [None, None]


async def test_get_many_by_chat_takes_more_chats_than_one_statement_may_bind(
    backend: Backend,
) -> None:
    world = await seed(backend.uow)
    # Past PostgreSQL's 32,767 arguments per query (asyncpg) and SQLite's usual 32,766.
    chats = [Jid(f"55669{n:08d}", Jid.USER_SERVER) for n in range(40_000)]
    stored = [conversation(world, chat) for chat in chats[::400]]
    await _store(backend, *stored)
    async with backend.uow() as uow:
        found = await uow.conversations.get_many_by_chat(world.session_id, chats)
    assert [c.id for c in found] == sorted(c.id for c in stored)


async def test_views_are_the_pages_of_search_as_the_api_shows_them(backend: Backend) -> None:
    world = await seed(backend.uow)
    whole = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    group = full_conversation(world)  # every field set
    fraction = conversation(
        world, phone(1), name="Ana", last_message_at=at(20.25), updated_at=at(20.5)
    )
    quiet = conversation(world, phone(2), created_at=whole, updated_at=whole)  # no message
    same_time = [conversation(world, phone(10 + n), last_message_at=at(20.25)) for n in range(3)]
    await _store(backend, group, fraction, quiet, *same_time)
    queries = [
        ConversationQuery(session_id=world.session_id, limit=2),
        ConversationQuery(session_id=world.session_id, text="ana"),
        ConversationQuery(session_id=world.session_id, status=ConversationStatus.ACTIVE),
        ConversationQuery(session_id=world.session_id, unread_only=True, assignee_id="nobody"),
        ConversationQuery(session_id=world.session_id, cursor=encode_cursor(None, "z")),
    ]
    seen: list[ConversationView] = []
    for query in queries:
        async with backend.uow() as uow:
            while True:
                expected = await uow.conversations.search(query)
                got = await uow.conversations.search_views(query)
                assert got.items == [ConversationView.of(c) for c in expected.items]
                assert got.next_cursor == expected.next_cursor
                seen += got.items
                if got.next_cursor is None:
                    break
                query = replace(query, cursor=got.next_cursor)
    assert len({v.id for v in seen}) == 6
    by_id = {v.id: v for v in seen}
    assert (by_id[quiet.id].created_at, by_id[quiet.id].last_message_at) == (
        "2026-03-04T05:06:07Z",
        None,
    )
    assert by_id[fraction.id].last_message_at == "2026-03-04T05:06:28.141011Z"
    assert (by_id[group.id].is_group, by_id[group.id].metadata) == (True, {"lead": 9})
    assert by_id[group.id].chat == "120363000000000001@g.us"
