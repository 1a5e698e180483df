"""The look-ups of a group of live messages from many sessions: one query each, whatever the
number of sessions (SessionRepository.get_many, ContactRepository.get_many_of_sessions,
ConversationRepository.get_many_by_chat_of_sessions, MessageRepository.existing_wa_ids_of_sessions).
"""

from __future__ import annotations

from tests.contract.builders import (
    World,
    add_session,
    at,
    contact,
    conversation,
    message,
    phone,
    seed,
)
from tests.contract.conftest import Backend
from whatsgate.domain.jid import Jid


async def worlds(backend: Backend) -> tuple[World, World, World]:
    first = await seed(backend.uow)
    second = World(first.organization, first.admin, await add_session(backend.uow, first, "B"))
    third = World(first.organization, first.admin, await add_session(backend.uow, first, "C"))
    return first, second, third


async def test_sessions_get_many_finds_those_that_exist_in_id_order(backend: Backend) -> None:
    first, second, third = await worlds(backend)
    async with backend.uow() as uow:
        found = await uow.sessions.get_many(
            [third.session_id, "no-such-session", first.session_id, first.session_id]
        )
        assert await uow.sessions.get_many([]) == []
    assert [s.id for s in found] == sorted([first.session_id, third.session_id])
    assert {s.name for s in found} == {first.session.name, "C"}
    assert second.session_id not in {s.id for s in found}


async def test_contacts_of_sessions_by_phone_or_lid(backend: Backend) -> None:
    first, second, third = await worlds(backend)
    lid = Jid("271600000007", "lid")
    ana = contact(first, phone(1), lid=lid)
    bob = contact(second, phone(2))
    bob_elsewhere = contact(third, phone(2))
    stored = [ana, bob, bob_elsewhere, contact(first, phone(3))]
    async with backend.uow() as uow:
        await uow.contacts.save_many(stored)
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.contacts.get_many_of_sessions(
            [first.session_id, second.session_id], [lid, phone(2), phone(2), phone(9)]
        )
        assert await uow.contacts.get_many_of_sessions([], [phone(1)]) == []
        assert await uow.contacts.get_many_of_sessions([first.session_id], []) == []
    assert [c.id for c in found] == sorted([ana.id, bob.id])
    assert {(c.session_id, c.jid) for c in found} == {
        (first.session_id, phone(1)),
        (second.session_id, phone(2)),
    }


async def test_conversations_of_sessions_by_chat(backend: Backend) -> None:
    first, second, third = await worlds(backend)
    group = Jid.group("120363000000000009")
    wanted = [conversation(first, phone(1)), conversation(second, group)]
    others = [conversation(third, phone(1)), conversation(first, phone(3))]
    async with backend.uow() as uow:
        await uow.conversations.save_many([*wanted, *others])
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.conversations.get_many_by_chat_of_sessions(
            [second.session_id, first.session_id], [group, phone(1), phone(1), phone(4)]
        )
        assert await uow.conversations.get_many_by_chat_of_sessions([], [group]) == []
    assert [c.id for c in found] == sorted(c.id for c in wanted)


async def test_existing_wa_ids_of_sessions_says_which_session_has_which(backend: Backend) -> None:
    first, second, third = await worlds(backend)
    async with backend.uow() as uow:
        await uow.messages.add_new(
            [
                message(first, "c1", "SAME", at(1)),
                message(second, "c2", "SAME", at(1)),
                message(second, "c2", "W2", at(2)),
                message(third, "c3", "W3", at(3)),
            ]
        )
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.messages.existing_wa_ids_of_sessions(
            [first.session_id, second.session_id], ["SAME", "W2", "W3", "nope"]
        )
        assert await uow.messages.existing_wa_ids_of_sessions([], ["SAME"]) == set()
        assert await uow.messages.existing_wa_ids_of_sessions([first.session_id], []) == set()
    assert found == {
        (first.session_id, "SAME"),
        (second.session_id, "SAME"),
        (second.session_id, "W2"),
    }


async def test_existing_wa_ids_of_sessions_beyond_one_page_of_ids(backend: Backend) -> None:
    first, second, _ = await worlds(backend)
    stored = [message(first, "c1", f"A{i:04d}", at(i)) for i in range(0, 900, 2)]
    stored += [message(second, "c2", f"A{i:04d}", at(i)) for i in range(1, 900, 6)]
    async with backend.uow() as uow:
        await uow.messages.add_new(stored)
        await uow.commit()
    asked = [f"A{i:04d}" for i in range(900)]  # more than one IN list's worth
    async with backend.uow() as uow:
        found = await uow.messages.existing_wa_ids_of_sessions(
            [first.session_id, second.session_id], asked
        )
    assert found == {(m.session_id, m.wa_id) for m in stored}
