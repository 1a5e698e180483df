"""On PostgreSQL, event ids come from a sequence at INSERT, and two units of work could commit
out of id order: a dispatcher told of the later id first would pass over the earlier ones for
good. ``SqlEventLog.write_staged`` prevents it with an advisory lock held from the insert to
the end of the transaction: a unit of work cannot insert events while another one that did
is still open. This pins that guarantee."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.events import ContactsSynced, StoredEvent
from whatsgate.testing import FakeClock, RecordingPublisher
from whatsgate.usecases.dispatch import EventDispatcher

pytestmark = pytest.mark.postgres


async def _until(engine: AsyncEngine, done: Callable[[], bool]) -> None:
    """Until ``done()`` or a connection waits for an advisory lock (bounded: 10 s)."""
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    for _ in range(1_000):
        if done():
            return
        async with engine.connect() as connection:
            if (await connection.execute(waiting)).scalar_one():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second unit of work neither committed nor waited for the lock")


async def test_a_unit_of_work_cannot_commit_events_past_an_open_one_that_wrote_some(
    postgres_engine: AsyncEngine,
) -> None:
    clock = FakeClock()
    publisher = RecordingPublisher()
    dispatcher: EventDispatcher

    def told(events: Sequence[StoredEvent]) -> None:
        dispatcher.wake(events)

    uow = SqlUnitOfWorkFactory(postgres_engine, on_commit=told)
    dispatcher = EventDispatcher(uow, {"recording": publisher}, clock)
    dispatcher.start()

    def event(count: int) -> ContactsSynced:
        return ContactsSynced(
            organization_id="org", session_id="session", occurred_at=clock.now(), count=count
        )

    async def b_commits() -> None:
        async with uow() as b:
            b.events.add(event(3))
            await b.commit()

    async with uow() as a:
        a.events.add(event(1), event(2))
        a_events = await a.events.write_staged()  # A's ids assigned, A not committed
        b = asyncio.create_task(b_commits())
        await _until(postgres_engine, b.done)
        assert not b.done()  # B waits for A: it cannot take an id and commit before A does
        await a.commit()
        dispatcher.wake(a_events)  # what A's commit tells when it writes the events itself
    await b
    await dispatcher.stop()

    counts = [e.data["count"] for e in publisher.events]
    assert counts == [1, 2, 3]
    assert [e.id for e in publisher.events] == sorted(e.id for e in publisher.events)
