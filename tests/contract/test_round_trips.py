"""Every entity comes back exactly as saved: every field, value objects, enums, aware UTC
times (microseconds included), JSON and frozensets."""

from __future__ import annotations

from datetime import UTC

from tests.contract.builders import (
    T0,
    at,
    fields_of,
    full_contact,
    full_conversation,
    full_messages,
    full_outbox_entry,
    full_session,
    seed,
)
from tests.contract.conftest import Backend
from whatsgate.domain.organization import Role, User
from whatsgate.domain.outbox import SendAttempt


async def test_organization_and_users(backend: Backend) -> None:
    world = await seed(backend.uow)
    agent = User(organization_id=world.org_id, name="Bea", role=Role.AGENT, created_at=at(1))
    async with backend.uow() as uow:
        await uow.users.add(agent)
        await uow.commit()

    async with backend.uow() as uow:
        org = await uow.organizations.get(world.org_id)
        by_name = await uow.organizations.get_by_name("Acme")
        users = await uow.users.in_organization(world.org_id)
        assert org is not None and by_name is not None
        assert fields_of(org) == fields_of(world.organization)
        assert by_name.id == org.id
        assert await uow.organizations.get_by_name("Nope") is None
        assert [o.id for o in await uow.organizations.all()] == [world.org_id]
        assert [fields_of(u) for u in users] == [fields_of(world.admin), fields_of(agent)]
        assert users[0].created_at.tzinfo is not None


async def test_user_save_updates(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        user = await uow.users.get(world.admin.id)
        assert user is not None
        user.name = "Ana Maria"
        user.role = Role.AGENT
        await uow.users.save(user)
        await uow.commit()
    async with backend.uow() as uow:
        saved = await uow.users.get(world.admin.id)
        assert saved is not None
        assert (saved.name, saved.role) == ("Ana Maria", Role.AGENT)


async def test_session_every_field(backend: Backend) -> None:
    world = await seed(backend.uow)
    session = full_session(world)
    async with backend.uow() as uow:
        await uow.sessions.add(session)
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.sessions.get(session.id)
    assert got is not None
    assert fields_of(got) == fields_of(session)
    assert isinstance(got.shared_with, frozenset)
    assert got.banned_until is not None and got.banned_until.utcoffset() is not None


async def test_contact_every_field(backend: Backend) -> None:
    world = await seed(backend.uow)
    contact = full_contact(world)
    async with backend.uow() as uow:
        await uow.contacts.save(contact)
        await uow.commit()
    async with backend.uow() as uow:
        by_jid = await uow.contacts.get_by_jid(world.session_id, contact.jid)
        assert contact.lid is not None
        by_lid = await uow.contacts.get_by_jid(world.session_id, contact.lid)
    assert by_jid is not None and by_lid is not None
    assert fields_of(by_jid) == fields_of(contact)
    assert by_lid.id == contact.id


async def test_conversation_every_field(backend: Backend) -> None:
    world = await seed(backend.uow)
    conversation = full_conversation(world)
    async with backend.uow() as uow:
        await uow.conversations.save(conversation)
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.conversations.get(conversation.id)
        by_chat = await uow.conversations.get_by_chat(world.session_id, conversation.chat)
    assert got is not None and by_chat is not None
    assert fields_of(got) == fields_of(conversation)
    assert by_chat.id == conversation.id


async def test_message_every_shape_and_field(backend: Backend) -> None:
    world = await seed(backend.uow)
    messages = full_messages(world, "conv-1")
    async with backend.uow() as uow:
        for m in messages:
            await uow.messages.save(m)
        await uow.commit()
    async with backend.uow() as uow:
        for m in messages:
            got = await uow.messages.get(m.id)
            assert got is not None
            assert fields_of(got) == fields_of(m)
            assert m.wa_id is not None
            by_wa = await uow.messages.get_by_wa_id(world.session_id, m.wa_id)
            assert by_wa is not None and by_wa.id == m.id


async def test_outbox_entry_and_attempts(backend: Backend) -> None:
    world = await seed(backend.uow)
    entry = full_outbox_entry(world)
    attempts = [
        SendAttempt(
            organization_id=world.org_id,
            session_id=world.session_id,
            outbox_id=entry.id,
            message_id=entry.message_id,
            attempt=n,
            started_at=at(n),
            latency_ms=12.5 * n,
            request_summary=f"text to 5566… #{n}",
            ok=n == 2,
            response="ok" if n == 2 else None,
            error=None if n == 2 else "timeout",
        )
        for n in (2, 1)
    ]
    async with backend.uow() as uow:
        await uow.outbox.add(entry)
        for attempt in attempts:
            await uow.outbox.add_attempt(attempt)
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.outbox.get_for_message(entry.message_id)
        logged = await uow.outbox.attempts_for_message(entry.message_id)
    assert got is not None
    assert fields_of(got) == fields_of(entry)
    assert [fields_of(a) for a in logged] == [fields_of(a) for a in reversed(attempts)]


async def test_times_come_back_in_utc(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        session = await uow.sessions.get(world.session_id)
    assert session is not None
    assert session.created_at == T0
    assert session.created_at.tzinfo is not None
    assert session.created_at.utcoffset() == UTC.utcoffset(None)
