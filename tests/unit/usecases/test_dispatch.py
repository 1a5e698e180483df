from __future__ import annotations

import asyncio

import pytest

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
