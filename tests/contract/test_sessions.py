"""SessionRepository: listing, restore's query, status counts, delete with everything under."""

from __future__ import annotations

from tests.contract.builders import (
    World,
    add_session,
    at,
    contact,
    conversation,
    message,
    outbox_entry,
    phone,
    seed,
)
from tests.contract.conftest import Backend
from whatsgate.domain.events import ContactsSynced
from whatsgate.domain.outbox import SendAttempt
from whatsgate.domain.session import Session, SessionStatus
from whatsgate.ports.repositories import Page


async def test_all_oldest_first_and_by_organization(backend: Backend) -> None:
    acme = await seed(backend.uow, "Acme")
    other = await seed(backend.uow, "Other")
    second = await add_session(backend.uow, acme, "Second")
    async with backend.uow() as uow:
        every = await uow.sessions.all()
        mine = await uow.sessions.all(acme.org_id)
    assert [s.id for s in every] == sorted([acme.session_id, other.session_id, second.id])
    assert [s.id for s in mine] == [acme.session_id, second.id]


async def test_desired_running_and_count_by_status(backend: Backend) -> None:
    world = await seed(backend.uow)
    second = await add_session(backend.uow, world, "Second")
    await add_session(backend.uow, world, "Third")
    async with backend.uow() as uow:
        for sid in (world.session_id, second.id):
            session = await uow.sessions.get(sid)
            assert session is not None
            session.start(at(1))
            await uow.sessions.save(session)
        await uow.commit()
    async with backend.uow() as uow:
        session = await uow.sessions.get(second.id)
        assert session is not None
        session.mark_failed("client_outdated", at(2))
        await uow.sessions.save(session)
        await uow.commit()
    async with backend.uow() as uow:
        running = await uow.sessions.list_desired_running()
        counts = await uow.sessions.count_by_status()
    assert [s.id for s in running] == [world.session_id]
    assert counts == {
        str(SessionStatus.STARTING): 1,
        str(SessionStatus.FAILED): 1,
        str(SessionStatus.STOPPED): 1,
    }


async def fill(backend: Backend, world: World, session: Session, n: int) -> tuple[str, str, str]:
    """A contact, conversation, message, outbox entry, attempt and event of ``session``
    (``phone(n)``); their contact's, conversation's and message's ids."""
    scoped = World(world.organization, world.admin, session)
    person = contact(scoped, phone(n))
    chat = conversation(scoped, phone(n))
    msg = message(scoped, chat.id, f"W{n}", at(n))
    entry = outbox_entry(scoped, msg.id, at(n))
    async with backend.uow() as uow:
        await uow.contacts.save(person)
        await uow.conversations.save(chat)
        await uow.messages.add_new([msg])
        await uow.outbox.add(entry)
        await uow.outbox.add_attempt(
            SendAttempt(
                organization_id=world.org_id,
                session_id=session.id,
                outbox_id=entry.id,
                message_id=msg.id,
                attempt=1,
                started_at=at(n),
                latency_ms=1.0,
                request_summary="text",
                ok=False,
                error="x",
            )
        )
        uow.events.add(
            ContactsSynced(
                organization_id=world.org_id, session_id=session.id, occurred_at=at(n), count=1
            )
        )
        await uow.commit()
    return person.id, chat.id, msg.id


async def test_delete_removes_everything_under_the_session_only(backend: Backend) -> None:
    world = await seed(backend.uow)
    keep = await add_session(backend.uow, world, "Keep")

    gone = await fill(backend, world, world.session, 1)
    kept = await fill(backend, world, keep, 2)

    async with backend.uow() as uow:
        await uow.sessions.delete(world.session_id)
        await uow.commit()

    async with backend.uow() as uow:
        assert await uow.sessions.get(world.session_id) is None
        assert await uow.contacts.get_by_jid(world.session_id, phone(1)) is None
        assert await uow.conversations.get(gone[1]) is None
        assert await uow.messages.get(gone[2]) is None
        assert await uow.outbox.get_for_message(gone[2]) is None
        assert await uow.outbox.attempts_for_message(gone[2]) == []
        assert await uow.events.after(0, session_id=world.session_id) == []
        assert await uow.outbox.pending_count(world.session_id) == 0
        # The other session keeps all of its own.
        assert await uow.sessions.get(keep.id) is not None
        assert await uow.contacts.get_by_jid(keep.id, phone(2)) is not None
        assert await uow.conversations.get(kept[1]) is not None
        assert await uow.messages.get(kept[2]) is not None
        assert await uow.outbox.get_for_message(kept[2]) is not None
        assert len(await uow.outbox.attempts_for_message(kept[2])) == 1
        assert [e.session_id for e in await uow.events.after(0)] == [keep.id]


async def test_delete_without_commit_keeps_everything(backend: Backend) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1))
    async with backend.uow() as uow:
        await uow.conversations.save(chat)
        await uow.commit()
    async with backend.uow() as uow:
        await uow.sessions.delete(world.session_id)
    async with backend.uow() as uow:
        assert await uow.sessions.get(world.session_id) is not None
        assert await uow.conversations.get(chat.id) is not None


async def test_clear_removes_the_rows_under_the_session_a_step_at_a_time(
    backend: Backend,
) -> None:
    """Six rows a fill (contact, conversation, message, outbox entry, attempt, event): four
    fills are 24 rows, gone in steps of at most 10, each committed; the session itself and
    the other session's rows stay."""
    world = await seed(backend.uow)
    keep = await add_session(backend.uow, world, "Keep")
    for n in range(1, 5):
        await fill(backend, world, world.session, n)
    kept = await fill(backend, world, keep, 9)
    steps = []
    while not steps or steps[-1] == 10:
        async with backend.uow() as uow:
            steps.append(await uow.sessions.clear(world.session_id, 10))
            await uow.commit()
    assert steps == [10, 10, 4]
    async with backend.uow() as uow:
        assert await uow.sessions.get(world.session_id) is not None
        assert await uow.contacts.search(world.session_id) == Page(items=[], next_cursor=None)
        assert await uow.events.after(0, session_id=world.session_id) == []
        assert await uow.outbox.pending_count(world.session_id) == 0
        assert await uow.sessions.clear(world.session_id, 10) == 0
        assert await uow.messages.get(kept[2]) is not None
        assert len(await uow.outbox.attempts_for_message(kept[2])) == 1
        assert [e.session_id for e in await uow.events.after(0)] == [keep.id]
