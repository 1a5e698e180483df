"""The realtime half wired as the server wires it: a commit wakes the event dispatcher, which
hands the stored event to socket.io and to the webhooks; both carry the same envelope."""

from __future__ import annotations

import asyncio
import json

from tests.adapters.servers import serve
from tests.adapters.socketio.support import Client, World
from whatsgate.adapters.clock import SystemClock
from whatsgate.adapters.socketio import RealtimeServer, SocketIOPublisher
from whatsgate.domain.events import MessageStatusChanged
from whatsgate.domain.message import MessageStatus
from whatsgate.testing import FakeWebhookSender, MemoryUnitOfWork
from whatsgate.usecases.dispatch import EventDispatcher
from whatsgate.usecases.webhooks import (
    CreateWebhook,
    CreateWebhookCommand,
    WebhookDeliveryWorker,
    WebhookPublisher,
    WebhookSettings,
)


async def test_one_commit_reaches_socketio_and_webhooks_with_the_same_envelope() -> None:
    world = World()
    org, users = await world.organization("Acme")
    session = await world.session(org, users[0], shared=[])
    clock = SystemClock()
    dispatcher: EventDispatcher | None = None

    def uow() -> MemoryUnitOfWork:
        return MemoryUnitOfWork(world.store, dispatcher.wake if dispatcher else None)

    sender = FakeWebhookSender()
    settings = WebhookSettings()
    worker = WebhookDeliveryWorker(uow, sender, clock, settings)
    realtime = RealtimeServer(world.authenticate, uow)
    dispatcher = EventDispatcher(
        uow,
        {
            "socketio": SocketIOPublisher(realtime.sio),
            "webhooks": WebhookPublisher(uow, clock, worker.wake),
        },
        clock,
    )
    await CreateWebhook(uow, clock, settings)(
        CreateWebhookCommand(
            actor=world.tokens["Acme-Ana"], url="https://hooks.example.com/wa", secret="x" * 20
        )
    )
    client = Client()
    try:
        async with serve(realtime.asgi_app()) as base:
            await realtime.start()
            dispatcher.start()
            worker.start()
            await client.connect(base, "Acme-Ana")
            assert (await client.call("subscribe", {"session_id": session.id}))["ok"]

            async with uow() as work:
                work.events.add(
                    MessageStatusChanged(
                        organization_id=org.id,
                        session_id=session.id,
                        occurred_at=clock.now(),
                        message_id="m1",
                        conversation_id="c1",
                        wa_id="3EB0",
                        status=MessageStatus.READ,
                    )
                )
                await work.commit()
            event = world.store.events[-1]
            await client.wait_for(event.id)
            async with asyncio.timeout(5):
                await sender.wait_for(1)
            await client.sio.disconnect()
    finally:
        await worker.close()
        await dispatcher.stop()
        await realtime.close()

    assert client.events == [event.envelope()]
    [request] = sender.requests
    assert json.loads(request.body) == event.envelope()
    assert event.envelope()["data"]["status"] == "read"
