"""The socket.io server end to end: a real python-socketio client against uvicorn on
127.0.0.1, the event log in memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import socketio

from tests.adapters.servers import serve
from tests.adapters.socketio.support import Client, World
from whatsgate.adapters.socketio import RealtimeServer, SocketIOPublisher
from whatsgate.domain.organization import User
from whatsgate.domain.session import Session


@dataclass
class Running:
    world: World
    server: RealtimeServer
    base: str
    publisher: SocketIOPublisher

    async def client(self, token: str | None) -> Client:
        client = Client()
        await client.connect(self.base, token)
        return client


@contextlib.asynccontextmanager
async def running(world: World, redis_url: str | None = None) -> AsyncIterator[Running]:
    server = RealtimeServer(world.authenticate, world.uow, redis_url=redis_url)
    try:
        async with serve(server.asgi_app()) as base:
            yield Running(world, server, base, SocketIOPublisher(server.sio))
    finally:
        await server.close()


@pytest.fixture
async def acme() -> AsyncIterator[tuple[Running, Session, Session, list[User]]]:
    """Acme (admin Ana, agents Bo and Cy; the session is shared with Bo), Other (a session)."""
    world = World()
    acme, users = await world.organization("Acme")
    other, other_users = await world.organization("Other")
    session = await world.session(acme, users[0], shared=[users[1]])
    foreign = await world.session(other, other_users[0], shared=[])
    clients: list[Client] = []
    async with running(world) as run:
        original = run.client

        async def tracked(token: str | None) -> Client:
            client = await original(token)
            clients.append(client)
            return client

        run.client = tracked  # type: ignore[method-assign]
        try:
            yield run, session, foreign, users
        finally:
            for client in clients:
                await client.sio.disconnect()


async def test_a_missing_or_bad_token_is_refused_at_connect(acme: Any) -> None:
    run, *_ = acme
    for token in (None, "forged"):
        client = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(run.base, token)
        [error] = client.errors
        assert error["data"]["code"] == "not_authenticated"
        assert not client.sio.connected


async def test_only_sessions_the_user_may_see_can_be_subscribed(acme: Any) -> None:
    run, session, foreign, _ = acme
    admin = await run.client("Acme-Ana")
    shared_agent = await run.client("Acme-Bo")
    other_agent = await run.client("Acme-Cy")

    refused = await admin.call("subscribe", {"session_id": foreign.id})
    assert refused == {
        "ok": False,
        "error": {
            "code": "session_not_found",
            "message": "No such session.",
            "details": {"session_id": foreign.id},
        },
    }
    not_shared = await other_agent.call("subscribe", {"session_id": session.id})
    assert not_shared["ok"] is False
    assert not_shared["error"]["code"] == "permission_denied"
    bad = await admin.call("subscribe", {"session_id": session.id, "after": "x"})
    assert bad["error"]["code"] == "invalid_input"
    assert (await shared_agent.call("subscribe", {"session_id": session.id}))["ok"] is True
    assert (await admin.call("subscribe", {"session_id": session.id}))["ok"] is True

    event = await run.world.store_event(session)
    await run.publisher.publish(event)
    foreign_event = await run.world.store_event(foreign)
    await run.publisher.publish(foreign_event)
    await admin.wait_for(event.id)
    await shared_agent.wait_for(event.id)
    marker = await run.world.store_event(session)
    await run.publisher.publish(marker)
    await admin.wait_for(marker.id)
    assert admin.events[0] == event.envelope()
    assert admin.ids() == shared_agent.ids() == [event.id, marker.id]
    assert other_agent.events == []


async def test_subscribe_with_after_replays_the_log_in_order_then_goes_live(acme: Any) -> None:
    run, session, _, _ = acme
    world: World = run.world
    stored = [await world.store_event(session) for _ in range(5)]
    for event in stored:
        await run.publisher.publish(event)
    client = await run.client("Acme-Ana")

    ack = await client.call("subscribe", {"session_id": session.id, "after": str(stored[1].id)})

    assert ack == {"ok": True, "session_id": session.id, "replayed": 3}
    assert client.events == [e.envelope() for e in stored[2:]]  # before the ack, in order
    live = await world.store_event(session)
    await run.publisher.publish(live)
    await client.wait_for(live.id)
    assert client.ids() == [e.id for e in stored[2:]] + [live.id]


async def test_no_event_is_lost_or_doubled_between_replay_and_live(acme: Any) -> None:
    run, session, _, _ = acme
    world: World = run.world
    for _ in range(1200):  # more than two replay pages
        await world.store_event(session)
    published = 0

    async def dispatcher() -> None:
        """Publishes the log in order as a dispatcher does, with stored-but-not-yet-published
        events in flight and new events arriving all the time."""
        nonlocal published
        for _ in range(60):
            for _ in range(3):
                await world.store_event(session)
            backlog = world.store.events[published:-2]  # the last two wait for the next round
            for event in backlog:
                await run.publisher.publish(event)
            published += len(backlog)
            await asyncio.sleep(0.002)
        for event in world.store.events[published:]:
            await run.publisher.publish(event)

    client = await run.client("Acme-Ana")
    task = asyncio.create_task(dispatcher())
    await asyncio.sleep(0.01)
    ack = await client.call("subscribe", {"session_id": session.id, "after": 0})
    await task
    last = world.store.events[-1].id
    await client.wait_for(last)
    assert ack["ok"] is True
    assert ack["replayed"] >= 1200
    assert client.ids() == list(range(1, last + 1))


async def test_assigned_conversations_reach_the_personal_room_once(acme: Any) -> None:
    run, session, _, users = acme
    world: World = run.world
    agent = await run.client("Acme-Cy")  # the session is not shared with Cy
    bo = await run.client("Acme-Bo")
    assert (await bo.call("subscribe", {"session_id": session.id}))["ok"] is True

    to_cy = await world.store_event(session, assignee=users[2].id)
    to_bo = await world.store_event(session, assignee=users[1].id)
    unassigned = await world.store_event(session)
    marker = await world.store_event(session, assignee=users[2].id)
    for event in (to_cy, to_bo, unassigned, marker):
        await run.publisher.publish(event)

    await agent.wait_for(marker.id)
    await bo.wait_for(marker.id)
    assert agent.ids() == [to_cy.id, marker.id]
    assert agent.events[0]["event"] == "conversation.updated"
    # Bo is subscribed to the session and assigned: each event arrives once.
    assert bo.ids() == [to_cy.id, to_bo.id, unassigned.id, marker.id]


async def test_unsubscribe_stops_the_session_events(acme: Any) -> None:
    run, session, _, users = acme
    world: World = run.world
    client = await run.client("Acme-Ana")
    await client.call("subscribe", {"session_id": session.id})
    first = await world.store_event(session)
    await run.publisher.publish(first)
    await client.wait_for(first.id)

    assert (await client.call("unsubscribe", {"session_id": session.id}))["ok"] is True
    after = await world.store_event(session)
    marker = await world.store_event(session, assignee=users[0].id)  # personal room
    for event in (after, marker):
        await run.publisher.publish(event)
    await client.wait_for(marker.id)
    assert client.ids() == [first.id, marker.id]


async def test_an_envelope_arrives_as_published_and_skip_sid_is_honoured(acme: Any) -> None:
    run, session, _, _ = acme
    world: World = run.world
    ana = await run.client("Acme-Ana")
    bo = await run.client("Acme-Bo")
    for client in (ana, bo):
        assert (await client.call("subscribe", {"session_id": session.id}))["ok"] is True
    first = await world.store_event(session)
    first.data.update({"text": 'olá \u2603 "quoted" \\ \n', "n": [1, 2.5, None, True]})
    await run.publisher.publish(first)
    await ana.wait_for(first.id)
    await bo.wait_for(first.id)
    assert ana.events[0] == first.envelope()
    assert bo.events[0] == first.envelope()

    second = await world.store_event(session)
    bo_sid = bo.sio.get_sid()
    await run.server.sio.emit(
        second.name, second.envelope(), to=[f"session:{session.id}"], skip_sid=bo_sid
    )
    marker = await world.store_event(session)
    await run.publisher.publish(marker)
    await ana.wait_for(marker.id)
    await bo.wait_for(marker.id)
    assert ana.ids() == [first.id, second.id, marker.id]
    assert bo.ids() == [first.id, marker.id]


def test_fast_json_falls_back_to_the_standard_library() -> None:
    import json
    import math

    from whatsgate.adapters.socketio.server import FastJson

    value = {"a": [1, 2.5, "é\u2603", None, {"b": True}]}
    assert json.loads(FastJson.dumps(value, separators=(",", ":"))) == value
    assert math.isnan(FastJson.loads("NaN"))  # msgspec refuses it; the standard library not
    assert FastJson.loads(b'{"x": 1}') == {"x": 1}
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        FastJson.loads("{not json")
