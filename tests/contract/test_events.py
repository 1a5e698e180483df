"""EventLog: events stored by the commit that caused them, ordered ids, filters, cursors."""

from __future__ import annotations

from tests.contract.builders import World, add_session, at, seed
from tests.contract.conftest import Backend
from whatsgate.domain.events import ContactsSynced, HistorySyncProgress, QrIssued, StoredEvent


def synced(world: World, n: int) -> ContactsSynced:
    return ContactsSynced(
        organization_id=world.org_id, session_id=world.session_id, occurred_at=at(n), count=n
    )


async def test_staged_events_are_stored_by_commit_with_increasing_ids(backend: Backend) -> None:
    world = await seed(backend.uow)
    qr = QrIssued(
        organization_id=world.org_id,
        session_id=world.session_id,
        occurred_at=at(1),
        qr="2@xyz",
        expires_at=at(60),
    )
    async with backend.uow() as uow:
        assert await uow.events.last_id() == 0
        uow.events.add(qr, synced(world, 2))
        assert await uow.events.after(0) == []  # staged, not stored
        await uow.commit()
        uow.events.add(synced(world, 3))
        await uow.commit()
    async with backend.uow() as uow:
        stored = await uow.events.after(0)
        last = await uow.events.last_id()
    assert [e.name for e in stored] == ["session.qr", "contacts.synced", "contacts.synced"]
    ids = [e.id for e in stored]
    assert ids == sorted(ids) and len(set(ids)) == 3 and last == ids[-1]
    first = stored[0]
    assert (first.organization_id, first.session_id, first.occurred_at) == (
        world.org_id,
        world.session_id,
        at(1),
    )
    assert first.data == {"qr": "2@xyz", "expires_at": "2026-03-04T05:07:07.891011Z"}
    assert first.assignee_id is None


async def test_rollback_drops_staged_events(backend: Backend) -> None:
    world = await seed(backend.uow)
    async with backend.uow() as uow:
        uow.events.add(synced(world, 1))
    async with backend.uow() as uow:
        uow.events.add(synced(world, 2))
        await uow.rollback()
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.events.after(0) == []


async def test_after_filters_and_limit(backend: Backend) -> None:
    acme = await seed(backend.uow, "Acme")
    other_org = await seed(backend.uow, "Other")
    second = World(acme.organization, acme.admin, await add_session(backend.uow, acme, "B"))
    async with backend.uow() as uow:
        uow.events.add(synced(acme, 1), synced(other_org, 2), synced(second, 3), synced(acme, 4))
        await uow.commit()
    async with backend.uow() as uow:
        every = await uow.events.after(0)
        ids = [e.id for e in every]
        assert [e.data["count"] for e in every] == [1, 2, 3, 4]
        assert [e.id for e in await uow.events.after(ids[1])] == ids[2:]
        assert [e.id for e in await uow.events.after(0, limit=2)] == ids[:2]
        by_org = await uow.events.after(0, organization_id=acme.org_id)
        assert [e.data["count"] for e in by_org] == [1, 3, 4]
        by_session = await uow.events.after(0, session_id=acme.session_id)
        assert [e.data["count"] for e in by_session] == [1, 4]
        both = await uow.events.after(
            ids[0], organization_id=acme.org_id, session_id=second.session_id
        )
        assert [e.data["count"] for e in both] == [3]


async def test_on_commit_is_called_after_commits_that_stored_events(backend: Backend) -> None:
    world = await seed(backend.uow)
    calls: list[int] = []
    make = backend.factory(on_commit=lambda events: calls.append(1))
    async with make() as uow:
        await uow.commit()  # nothing staged
        assert calls == []
        uow.events.add(synced(world, 1))
        await uow.commit()
        assert len(calls) == 1
        # The callback runs once the events are visible to others.
        async with backend.uow() as reader:
            assert len(await reader.events.after(0)) == 1
        uow.events.add(synced(world, 2))
    assert len(calls) == 1  # left without commit


async def test_on_commit_is_given_the_events_as_the_log_stores_them(backend: Backend) -> None:
    world = await seed(backend.uow)
    told: list[list[StoredEvent]] = []
    make = backend.factory(on_commit=lambda events: told.append(list(events)))
    qr = QrIssued(
        organization_id=world.org_id,
        session_id=world.session_id,
        occurred_at=at(1),
        qr="2@xyz",
        expires_at=at(60),
    )
    async with make() as uow:
        uow.events.add(qr, synced(world, 2))
        await uow.commit()
        uow.events.add(synced(world, 3))
        await uow.commit()
    async with backend.uow() as reader:
        stored = await reader.events.after(0)
    # Ids, names, times (aware UTC), payloads and rooms: what a reader of the log would get.
    assert told == [stored[:2], stored[2:]]
    assert [e.id for e in stored] == sorted({e.id for e in stored})
    # Many at once (more than one page of a multi-row INSERT): each id still its own event's.
    async with make() as uow:
        uow.events.add(*(synced(world, n) for n in range(1_200)))
        await uow.commit()
    async with backend.uow() as reader:
        many = await reader.events.after(stored[-1].id, limit=2_000)
    assert told[-1] == many
    assert [e.data["count"] for e in many] == list(range(1_200))


async def test_consumer_cursors(backend: Backend) -> None:
    await seed(backend.uow)
    async with backend.uow() as uow:
        assert await uow.events.get_cursor("webhooks") == 0
        await uow.events.set_cursor("webhooks", 7)
        assert await uow.events.get_cursor("webhooks") == 7
    async with backend.uow() as uow:
        assert await uow.events.get_cursor("webhooks") == 0  # not committed
        await uow.events.set_cursor("webhooks", 7)
        await uow.events.set_cursor("socketio", 3)
        await uow.commit()
    async with backend.uow() as uow:
        await uow.events.set_cursor("webhooks", 9)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.events.get_cursor("webhooks") == 9
        assert await uow.events.get_cursor("socketio") == 3


async def test_ids_are_never_reused_after_a_session_is_deleted(backend: Backend) -> None:
    world = await seed(backend.uow)
    keep = World(world.organization, world.admin, await add_session(backend.uow, world, "Keep"))
    async with backend.uow() as uow:
        uow.events.add(synced(keep, 1), synced(world, 2), synced(world, 3))
        await uow.commit()
    async with backend.uow() as uow:
        before = [e.id for e in await uow.events.after(0)]
        await uow.sessions.delete(world.session_id)
        await uow.commit()
    async with backend.uow() as uow:
        uow.events.add(
            HistorySyncProgress(
                organization_id=keep.org_id,
                session_id=keep.session_id,
                occurred_at=at(4),
                processed=1,
                total=None,
                done=True,
            )
        )
        await uow.commit()
    async with backend.uow() as uow:
        after = await uow.events.after(0)
    assert after[0].id == before[0]
    assert after[-1].id > before[-1]  # a consumer at before[-1] still sees the new event
