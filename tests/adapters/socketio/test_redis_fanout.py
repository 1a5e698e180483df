"""Two socket.io servers sharing Redis: an event published on one reaches a client of the
other. Needs WHATSGATE_TEST_REDIS_URL."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis.asyncio as aioredis

from tests.adapters.servers import serve
from tests.adapters.socketio.support import Client, World
from whatsgate.adapters.socketio import RealtimeServer, SocketIOPublisher

pytestmark = pytest.mark.redis


async def _redis_url() -> str:
    url = os.environ.get("WHATSGATE_TEST_REDIS_URL")
    if not url:
        pytest.skip("WHATSGATE_TEST_REDIS_URL is not set: the Redis fan-out test needs Redis")
    client = aioredis.Redis.from_url(url)
    try:
        async with asyncio.timeout(2):
            await client.ping()
    except Exception as exc:
        pytest.skip(f"Redis at WHATSGATE_TEST_REDIS_URL is not reachable: {exc!r}")
    finally:
        await client.aclose()
    return url


async def _listeners(url: str, channel: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def test_an_event_published_on_one_node_reaches_a_client_of_the_other() -> None:
    url = await _redis_url()
    channel = f"whatsgate-test-{uuid.uuid4().hex}"
    world = World()
    org, users = await world.organization("Acme")
    session = await world.session(org, users[0], shared=[])
    old = await world.store_event(session)
    node_a = RealtimeServer(world.authenticate, world.uow, redis_url=url, redis_channel=channel)
    node_b = RealtimeServer(world.authenticate, world.uow, redis_url=url, redis_channel=channel)
    client = Client()
    try:
        async with serve(node_a.asgi_app()), serve(node_b.asgi_app()) as base_b:
            await node_a.start()
            await node_b.start()
            for _ in range(250):  # both nodes listen before anything is published
                if await _listeners(url, channel) >= 2:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the socket.io nodes never subscribed to the Redis channel")
            await client.connect(base_b, "Acme-Ana")
            ack = await client.call("subscribe", {"session_id": session.id, "after": 0})
            assert ack["replayed"] == 1

            publisher_a = SocketIOPublisher(node_a.sio)
            await publisher_a.publish(old)  # already replayed: not sent again
            live = await world.store_event(session)
            await publisher_a.publish(live)
            assigned = await world.store_event(session, assignee=users[0].id)
            await publisher_a.publish(assigned)
            await client.wait_for(assigned.id)
            await client.sio.disconnect()
    finally:
        await node_a.close()
        await node_b.close()
    assert client.ids() == [old.id, live.id, assigned.id]
    assert client.events[1] == live.envelope()
