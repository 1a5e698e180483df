from __future__ import annotations

import asyncio
from typing import Any

import pytest

from whatsgate.adapters.memory import MemoryUnitOfWork
from whatsgate.domain.events import ContactsSynced, StoredEvent
from whatsgate.ports.publisher import EventPublisher
from whatsgate.testing import RecordingPublisher, settle
from whatsgate.usecases.dispatch import DispatchSettings, EventDispatcher

from .harness import ALICE, BOB, World, incoming


class FlakyPublisher(EventPublisher):
    """Fails on the given event ids until ``healed``; records what it accepted."""

    def __init__(self, fail_on: set[int]) -> None:
        self.fail_on = fail_on
        self.healed = False
        self.events: list[StoredEvent] = []

    async def publish(self, event: StoredEvent) -> None:
        if event.id in self.fail_on and not self.healed:
            raise ConnectionError("webhook endpoint down")
        self.events.append(event)


@pytest.fixture
def world() -> World:
    return World()


def ids(events: list[StoredEvent]) -> list[int]:
    return [e.id for e in events]


async def stored_event(world: World, session_id: str, organization_id: str, count: int) -> None:
    async with world.uow() as uow:
        uow.events.add(
            ContactsSynced(
                organization_id=organization_id,
                session_id=session_id,
                occurred_at=world.clock.now(),
                count=count,
            )
        )
        await uow.commit()


async def test_a_commit_wakes_the_dispatcher_without_waiting_on_the_clock(world: World) -> None:
    session = await world.new_session()
    world.dispatcher.start()
    await settle()
    published_before = len(world.publisher.events)
    await world.receive(session.id, incoming("M1"))
    await settle()  # no clock.advance: the commit itself woke the dispatcher
    assert world.publisher.names()[published_before:] == ["message.new", "conversation.updated"]
    await world.dispatcher.stop()


async def test_every_stored_event_reaches_every_publisher_once_in_order(world: World) -> None:
    other = RecordingPublisher()
    dispatcher = EventDispatcher(
        world.uow, {"socketio": world.publisher, "webhooks": other}, world.clock
    )
    world.dispatcher = dispatcher
    first = await world.new_session("one")
    second = await world.new_session("two")
    dispatcher.start()
    for i in range(30):
        target = first if i % 2 else second
        await asyncio.gather(
            world.receive(target.id, incoming(f"A{i}", chat=ALICE)),
            world.receive(target.id, incoming(f"B{i}", chat=BOB)),
        )
        if i % 7 == 0:
            await settle()
    await settle()
    await dispatcher.stop()
    stored = ids(world.store.events)
    assert ids(world.publisher.events) == stored
    assert ids(other.events) == stored
    for session in (first, second):
        of_session = [e.id for e in world.store.events if e.session_id == session.id]
        assert [e.id for e in other.events if e.session_id == session.id] == of_session
    # Draining again hands nothing a second time.
    await dispatcher.drain()
    assert ids(world.publisher.events) == stored


async def test_a_rolled_back_change_publishes_nothing(world: World) -> None:
    session = await world.new_session()
    await world.dispatcher.drain()
    published = len(world.publisher.events)
    async with world.uow() as uow:
        uow.events.add(
            ContactsSynced(
                organization_id=session.organization_id,
                session_id=session.id,
                occurred_at=world.clock.now(),
                count=1,
            )
        )
        # no commit
    await world.dispatcher.drain()
    assert len(world.publisher.events) == published


async def test_after_a_restart_the_dispatcher_catches_up_from_its_cursor(world: World) -> None:
    session = await world.new_session()
    world.dispatcher.start()
    await world.receive(session.id, incoming("M1"))
    await settle()
    await world.dispatcher.stop()
    handed_before = ids(world.publisher.events)
    assert handed_before == ids(world.store.events)

    # Events committed while no dispatcher runs (the process is down)...
    await stored_event(world, session.id, session.organization_id, 1)
    await stored_event(world, session.id, session.organization_id, 2)
    # ... are handed out by the next process, and only those.
    world.build()
    restarted = world.publisher
    world.dispatcher.start()
    await settle()
    assert [e.data for e in restarted.events] == [{"count": 1}, {"count": 2}]
    await world.dispatcher.stop()


async def test_a_failing_publisher_is_retried_in_order_without_holding_back_others(
    world: World,
) -> None:
    session = await world.new_session()
    await stored_event(world, session.id, session.organization_id, 0)
    start = world.store.events[-1].id
    flaky = FlakyPublisher(fail_on={start + 2})
    steady = RecordingPublisher()
    dispatcher = EventDispatcher(
        world.uow,
        {"webhooks": flaky, "socketio": steady},
        world.clock,
        DispatchSettings(retry_delay=5),
    )
    world.dispatcher = dispatcher
    dispatcher.start()
    for n in range(1, 5):
        await stored_event(world, session.id, session.organization_id, n)
    await settle()
    all_ids = ids(world.store.events)
    assert ids(steady.events) == all_ids
    assert ids(flaky.events) == [i for i in all_ids if i < start + 2]
    flaky.healed = True
    await world.clock.advance(5)
    assert ids(flaky.events) == all_ids  # resumed at the failed event, nothing twice
    await dispatcher.stop()


async def test_the_cursor_is_kept_in_the_event_log(world: World) -> None:
    session = await world.new_session()
    await stored_event(world, session.id, session.organization_id, 1)
    await world.dispatcher.drain()
    assert world.store.cursors["publisher:recording"] == world.store.events[-1].id


class CountingReads(MemoryUnitOfWork):
    """A memory unit of work that counts the reads of the event log (``after``)."""

    reads = 0

    def _reset(self) -> None:
        super()._reset()
        read = self.events.after

        async def counted(after_id: int, **filters: Any) -> list[StoredEvent]:
            CountingReads.reads += 1
            return await read(after_id, **filters)

        self.events.after = counted  # type: ignore[method-assign]


async def test_committed_events_are_handed_out_without_reading_them_back(world: World) -> None:
    session = await world.new_session()

    def counting() -> MemoryUnitOfWork:
        return CountingReads(world.store, on_commit=world._committed)

    world.dispatcher = EventDispatcher(counting, {"recording": world.publisher}, world.clock)
    world.dispatcher.start()
    await settle()  # catches up with the log (the session's events)
    CountingReads.reads = 0
    for n in range(5):
        await stored_event(world, session.id, session.organization_id, n)
        await world.receive(session.id, incoming(f"M{n}"))
    await settle()
    assert ids(world.publisher.events) == ids(world.store.events)
    assert CountingReads.reads == 0  # every event came with the commit that stored it
    await world.dispatcher.stop()


async def test_events_stored_by_another_writer_are_read_from_the_log_in_order(
    world: World,
) -> None:
    session = await world.new_session()
    world.dispatcher.start()
    await settle()
    # Another process (no on_commit here) stores two events, then this one stores a third:
    # the dispatcher sees the gap before it and reads the log.
    elsewhere = MemoryUnitOfWork(world.store)
    async with elsewhere:
        for n in (1, 2):
            elsewhere.events.add(
                ContactsSynced(
                    organization_id=session.organization_id,
                    session_id=session.id,
                    occurred_at=world.clock.now(),
                    count=n,
                )
            )
        await elsewhere.commit()
    await settle()
    assert [e.data for e in world.publisher.events[-2:]] != [{"count": 1}, {"count": 2}]
    await stored_event(world, session.id, session.organization_id, 3)
    await settle()
    assert ids(world.publisher.events) == ids(world.store.events)
    assert [e.data for e in world.publisher.events[-3:]] == [
        {"count": 1},
        {"count": 2},
        {"count": 3},
    ]
    await world.dispatcher.stop()


async def test_commits_told_out_of_order_are_handed_out_in_log_order(world: World) -> None:
    session = await world.new_session()
    await world.dispatcher.drain()
    before = len(world.publisher.events)
    quiet = MemoryUnitOfWork(world.store)  # told to nobody yet
    for n in (1, 2, 3):
        async with quiet:
            quiet.events.add(
                ContactsSynced(
                    organization_id=session.organization_id,
                    session_id=session.id,
                    occurred_at=world.clock.now(),
                    count=n,
                )
            )
            await quiet.commit()
    first, second, third = world.store.events[-3:]
    world.dispatcher.start()
    world.dispatcher.wake([third])
    world.dispatcher.wake([first])
    await settle()
    world.dispatcher.wake([second])
    await settle()
    assert ids(world.publisher.events[before:]) == [first.id, second.id, third.id]
    await world.dispatcher.stop()
    assert ids(world.publisher.events[before:]) == [first.id, second.id, third.id]


async def test_cursors_are_saved_every_so_many_events_or_seconds_and_at_stop(
    world: World,
) -> None:
    session = await world.new_session()
    settings = DispatchSettings(cursor_every=5, cursor_interval=10)
    dispatcher = EventDispatcher(world.uow, {"recording": world.publisher}, world.clock, settings)
    world.dispatcher = dispatcher
    await dispatcher.drain()
    cursor = "publisher:recording"
    saved = world.store.cursors.get(cursor, 0)
    running = asyncio.create_task(dispatcher.run())
    for n in range(3):
        await stored_event(world, session.id, session.organization_id, n)
    await settle()
    assert len(world.publisher.events) == len(world.store.events)
    assert world.store.cursors.get(cursor, 0) == saved  # 3 events: not yet
    await world.clock.advance(10)
    assert world.store.cursors[cursor] == world.store.events[-1].id  # 10 s later
    for n in range(7):
        await stored_event(world, session.id, session.organization_id, n)
        await settle()
    assert world.store.cursors[cursor] == world.store.events[-3].id  # after the 5th

    # A crash now (no stop): the next process hands out again only what followed the cursor.
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    handed = ids(world.publisher.events)
    world.build()
    world.dispatcher.start()
    await settle()
    assert ids(world.publisher.events) == handed[-2:]
    await world.dispatcher.stop()
    assert world.store.cursors[cursor] == world.store.events[-1].id
