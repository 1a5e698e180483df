"""Webhook deliveries over real HTTP to a receiver on 127.0.0.1, time on a fake clock."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.adapters.servers import serve
from whatsgate.adapters.webhooks import HttpxWebhookSender
from whatsgate.domain.auth import Principal
from whatsgate.domain.events import ContactsSynced
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.session import Session
from whatsgate.domain.webhook import DeliveryError, DestinationRefused, verify_signature
from whatsgate.testing import FakeClock, MemoryStore, MemoryUnitOfWork
from whatsgate.usecases.webhooks import (
    CreateWebhook,
    CreateWebhookCommand,
    ListDeliveries,
    ListDeliveriesQuery,
    WebhookDeliveryWorker,
    WebhookPublisher,
    WebhookSettings,
)

SECRET = "receiver-shared-secret-123"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Receiver:
    """A webhook receiver as a user would write one: it checks the signature (401 when
    wrong), drops duplicates by delivery id, and fails the first ``fail_first`` requests."""

    clock: FakeClock
    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append({"path": scope["path"], "headers": headers, "body": body})
        signed = verify_signature(
            headers.get("x-whatsgate-signature"), body, SECRET, now=self.clock.now().timestamp()
        )
        if not signed:
            status = 401
        elif len(self.requests) <= self.fail_first:
            status = 500
        else:
            self.accepted.setdefault(headers["x-whatsgate-delivery"], json.loads(body))
            status = 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class World:
    sender: HttpxWebhookSender
    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=FakeClock)

    def uow(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.store)

    async def setup(self) -> tuple[Principal, Session]:
        now = self.clock.now()
        org = Organization(name="Acme", created_at=now)
        admin = User(organization_id=org.id, name="Ana", role=Role.ADMIN, created_at=now)
        session = Session(organization_id=org.id, owner_id=admin.id, name="s", created_at=now)
        async with self.uow() as uow:
            await uow.organizations.add(org)
            await uow.users.add(admin)
            await uow.sessions.add(session)
            uow.events.add(
                ContactsSynced(
                    organization_id=org.id, session_id=session.id, occurred_at=now, count=12
                )
            )
            await uow.commit()
        return Principal(user_id=admin.id, organization_id=org.id, role=Role.ADMIN), session


async def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_try_signed() -> None:
    sender = HttpxWebhookSender(allow_private=True, timeout=5)
    world = World(sender)
    receiver = Receiver(world.clock, fail_first=2)
    settings = WebhookSettings(allow_private=True)
    worker = WebhookDeliveryWorker(world.uow, sender, world.clock, settings)
    admin, _ = await world.setup()
    try:
        async with serve(receiver) as base:
            webhook = await CreateWebhook(world.uow, world.clock, settings)(
                CreateWebhookCommand(actor=admin, url=f"{base}/hooks/wa", secret=SECRET)
            )
            event = world.store.events[-1]
            await WebhookPublisher(world.uow, world.clock).publish(event)

            await worker.run_once()
            await world.clock.advance(10)
            await worker.run_once()
            await world.clock.advance(30)
            await worker.run_once()
    finally:
        await sender.aclose()

    assert [r["path"] for r in receiver.requests] == ["/hooks/wa"] * 3
    assert receiver.accepted == {str(event.id): event.envelope()}
    assert {r["headers"]["x-whatsgate-delivery"] for r in receiver.requests} == {str(event.id)}
    assert receiver.requests[0]["headers"]["x-whatsgate-event"] == "contacts.synced"
    page = await ListDeliveries(world.uow)(ListDeliveriesQuery(actor=admin, webhook_id=webhook.id))
    [record] = page.items
    assert record.delivery.status == "delivered"
    assert [a.status_code for a in record.attempts] == [500, 500, 204]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in record.attempts)


async def test_a_receiver_with_another_secret_refuses_and_the_delivery_fails() -> None:
    sender = HttpxWebhookSender(allow_private=True, timeout=5)
    world = World(sender)
    receiver = Receiver(world.clock)
    settings = WebhookSettings(allow_private=True)
    admin, _ = await world.setup()
    try:
        async with serve(receiver) as base:
            webhook = await CreateWebhook(world.uow, world.clock, settings)(
                CreateWebhookCommand(actor=admin, url=base, secret="not-the-receivers-secret")
            )
            await WebhookPublisher(world.uow, world.clock).publish(world.store.events[-1])
            await WebhookDeliveryWorker(world.uow, sender, world.clock, settings).run_once()
    finally:
        await sender.aclose()
    page = await ListDeliveries(world.uow)(ListDeliveriesQuery(actor=admin, webhook_id=webhook.id))
    assert [r.delivery.status for r in page.items] == ["failed"]
    assert page.items[0].delivery.last_status_code == 401
    assert receiver.accepted == {}


async def test_the_sender_refuses_private_destinations_before_connecting() -> None:
    world = World(HttpxWebhookSender())
    receiver = Receiver(world.clock)
    try:
        async with serve(receiver) as base:
            port = base.rsplit(":", 1)[1]
            for url in (base, f"http://localhost:{port}/", f"http://[::ffff:127.0.0.1]:{port}/"):
                with pytest.raises(DestinationRefused):
                    await world.sender.send(url, b"{}", {})
    finally:
        await world.sender.aclose()
    assert receiver.requests == []


async def test_no_answer_is_a_delivery_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = HttpxWebhookSender(allow_private=True, connect_timeout=2)
    try:
        with pytest.raises(DeliveryError) as caught:
            await sender.send(f"http://127.0.0.1:{port}/", b"{}", {})
    finally:
        await sender.aclose()
    assert caught.value.retryable


async def test_redirects_are_not_followed_and_public_literals_go_out_as_they_are() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://10.0.0.1/"})

    sender = HttpxWebhookSender(transport=httpx.MockTransport(handler))
    try:
        status = await sender.send("http://93.184.216.34:8080/hook", b"{}", {"X-A": "1"})
    finally:
        await sender.aclose()
    assert status == 302
    assert [str(r.url) for r in seen] == ["http://93.184.216.34:8080/hook"]
    assert seen[0].headers["X-A"] == "1"


async def test_a_host_name_goes_to_the_address_that_was_checked() -> None:
    seen: list[httpx.Request] = []
    asked: list[tuple[str, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["93.184.216.34", "2606:2800:220:1::1"]

    sender = HttpxWebhookSender(transport=httpx.MockTransport(handler), resolver=resolver)
    try:
        assert await sender.send("https://hooks.example.com/wa?x=1", b"{}", {}) == 204
    finally:
        await sender.aclose()
    assert asked == [("hooks.example.com", 443)]
    [request] = seen
    assert str(request.url) == "https://93.184.216.34/wa?x=1"
    assert request.headers["Host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


async def test_a_host_name_that_resolves_to_any_private_address_is_refused() -> None:
    seen: list[httpx.Request] = []

    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    async def unknown(host: str, port: int) -> list[str]:
        raise socket.gaierror("Name or service not known")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    refusing = HttpxWebhookSender(transport=httpx.MockTransport(handler), resolver=rebinding)
    failing = HttpxWebhookSender(transport=httpx.MockTransport(handler), resolver=unknown)
    try:
        with pytest.raises(DestinationRefused, match=r"10\.0\.0\.7"):
            await refusing.send("http://evil.example.net/", b"{}", {})
        with pytest.raises(DeliveryError, match="Cannot resolve") as caught:
            await failing.send("http://nowhere.example.net/", b"{}", {})
    finally:
        await refusing.aclose()
        await failing.aclose()
    assert caught.value.retryable
    assert seen == []
