"""WebhookRepository: webhooks by organization, one delivery per (webhook, event), what is
due, the delivery log, deletes that take the children along."""

from __future__ import annotations

from tests.contract.builders import T0, at, seed
from tests.contract.conftest import Backend
from whatsgate.domain.events import ContactsSynced
from whatsgate.domain.webhook import (
    DeliveryAttempt,
    DeliveryStatus,
    RetrySchedule,
    Webhook,
    WebhookDelivery,
)

SECRETS = ("new-secret-new-secret", "old-secret-old-secret")


async def _event_ids(backend: Backend, org_id: str, session_id: str, n: int) -> list[int]:
    async with backend.uow() as uow:
        for i in range(n):
            uow.events.add(
                ContactsSynced(
                    organization_id=org_id, session_id=session_id, occurred_at=at(i), count=i
                )
            )
        await uow.commit()
    async with backend.uow() as uow:
        return [e.id for e in await uow.events.after(0, session_id=session_id, limit=1000)]


async def _attempted(
    backend: Backend, webhooks: list[Webhook], deliveries: list[WebhookDelivery]
) -> None:
    """The webhooks, and the deliveries with one attempt each, committed."""
    async with backend.uow() as uow:
        for webhook in webhooks:
            await uow.webhooks.add(webhook)
        for delivery in deliveries:
            await uow.webhooks.add_delivery(delivery)
            await uow.webhooks.add_attempt(
                DeliveryAttempt(delivery_id=delivery.id, attempt=1, at=T0)
            )
        await uow.commit()


async def test_webhooks_round_trip_by_organization(backend: Backend) -> None:
    acme = await seed(backend.uow)
    other = await seed(backend.uow, "Other")
    every = Webhook(organization_id=acme.org_id, url="https://a.example/h", created_at=T0)
    narrow = Webhook(
        organization_id=acme.org_id,
        session_id=acme.session_id,
        url="https://b.example/h",
        events=frozenset({"message.new", "message.status"}),
        secrets=SECRETS,
        active=False,
        created_at=at(1),
    )
    foreign = Webhook(organization_id=other.org_id, url="https://c.example/h", created_at=T0)
    async with backend.uow() as uow:
        for webhook in (narrow, foreign, every):
            await uow.webhooks.add(webhook)
        await uow.commit()
    async with backend.uow() as uow:
        found = await uow.webhooks.for_organization(acme.org_id)
        loaded = await uow.webhooks.get(narrow.id)
        assert await uow.webhooks.get("missing") is None
    assert [w.id for w in found] == sorted([every.id, narrow.id])
    assert loaded is not None
    assert (loaded.session_id, loaded.url, loaded.events, loaded.secrets, loaded.active) == (
        acme.session_id,
        "https://b.example/h",
        frozenset({"message.new", "message.status"}),
        SECRETS,
        False,
    )
    assert loaded.created_at == at(1)


async def test_one_delivery_per_webhook_and_event(backend: Backend) -> None:
    world = await seed(backend.uow)
    [event_id] = await _event_ids(backend, world.org_id, world.session_id, 1)
    webhook = Webhook(organization_id=world.org_id, url="https://a.example/h", created_at=T0)
    async with backend.uow() as uow:
        await uow.webhooks.add(webhook)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.webhooks.add_delivery(WebhookDelivery.new(webhook.id, event_id, T0))
        assert not await uow.webhooks.add_delivery(WebhookDelivery.new(webhook.id, event_id, T0))
        await uow.commit()
    async with backend.uow() as uow:
        assert not await uow.webhooks.add_delivery(WebhookDelivery.new(webhook.id, event_id, T0))
        page = await uow.webhooks.deliveries(webhook.id)
    assert [d.event_id for d in page.items] == [event_id]


async def test_due_next_and_the_log_follow_attempts(backend: Backend) -> None:
    world = await seed(backend.uow)
    ids = await _event_ids(backend, world.org_id, world.session_id, 3)
    webhook = Webhook(organization_id=world.org_id, url="https://a.example/h", created_at=T0)
    deliveries = [
        WebhookDelivery.new(webhook.id, event_id, at(i)) for i, event_id in enumerate(ids)
    ]
    async with backend.uow() as uow:
        assert await uow.webhooks.next_delivery_at() is None
        await uow.webhooks.add(webhook)
        for delivery in deliveries:
            await uow.webhooks.add_delivery(delivery)
        await uow.commit()
    first, second, third = deliveries
    async with backend.uow() as uow:
        assert [d.id for d in await uow.webhooks.due_deliveries(at(1))] == [first.id, second.id]
        assert [d.id for d in await uow.webhooks.due_deliveries(at(5), limit=1)] == [first.id]
        assert await uow.webhooks.next_delivery_at() == at(0)
        first.record(503, None, at(0), RetrySchedule())
        await uow.webhooks.save_delivery(first)
        await uow.webhooks.add_attempt(
            DeliveryAttempt(
                delivery_id=first.id, attempt=1, at=at(0), status_code=503, latency_ms=12.5
            )
        )
        second.record(200, None, at(1), RetrySchedule())
        await uow.webhooks.save_delivery(second)
        await uow.webhooks.add_attempt(
            DeliveryAttempt(delivery_id=second.id, attempt=1, at=at(1), status_code=200)
        )
        await uow.commit()
    async with backend.uow() as uow:
        assert [d.id for d in await uow.webhooks.due_deliveries(at(9))] == [third.id]
        assert await uow.webhooks.next_delivery_at() == at(2)
        saved = await uow.webhooks.get_delivery(first.id)
        delivered = await uow.webhooks.deliveries(webhook.id, status=DeliveryStatus.DELIVERED)
        newest_two = await uow.webhooks.deliveries(webhook.id, limit=2)
        assert newest_two.next_cursor is not None
        rest = await uow.webhooks.deliveries(webhook.id, cursor=newest_two.next_cursor)
        [attempt] = await uow.webhooks.attempts_for(first.id)
    assert saved is not None
    assert (saved.status, saved.attempts, saved.next_attempt_at, saved.last_status_code) == (
        DeliveryStatus.PENDING,
        1,
        at(10),
        503,
    )
    assert [d.id for d in delivered.items] == [second.id]
    assert [d.id for d in newest_two.items + rest.items] == [third.id, second.id, first.id]
    assert rest.next_cursor is None
    assert (attempt.attempt, attempt.at, attempt.status_code, attempt.latency_ms) == (
        1,
        at(0),
        503,
        12.5,
    )


async def test_deleting_a_webhook_takes_its_deliveries_and_attempts(backend: Backend) -> None:
    world = await seed(backend.uow)
    [event_id] = await _event_ids(backend, world.org_id, world.session_id, 1)
    webhook = Webhook(organization_id=world.org_id, url="https://a.example/h", created_at=T0)
    kept = Webhook(organization_id=world.org_id, url="https://b.example/h", created_at=T0)
    gone = WebhookDelivery.new(webhook.id, event_id, T0)
    stays = WebhookDelivery.new(kept.id, event_id, T0)
    async with backend.uow() as uow:
        await uow.webhooks.add(webhook)
        await uow.webhooks.add(kept)
        await uow.webhooks.add_delivery(gone)
        await uow.webhooks.add_delivery(stays)
        await uow.webhooks.add_attempt(DeliveryAttempt(delivery_id=gone.id, attempt=1, at=T0))
        await uow.commit()
    async with backend.uow() as uow:
        await uow.webhooks.delete(webhook.id)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.webhooks.get(webhook.id) is None
        assert await uow.webhooks.get_delivery(gone.id) is None
        assert await uow.webhooks.attempts_for(gone.id) == []
        assert await uow.webhooks.get_delivery(stays.id) is not None
        assert [w.id for w in await uow.webhooks.for_organization(world.org_id)] == [kept.id]


async def test_deleting_a_session_takes_its_webhooks(backend: Backend) -> None:
    world = await seed(backend.uow)
    of_session = Webhook(
        organization_id=world.org_id,
        session_id=world.session_id,
        url="https://a.example/h",
        created_at=T0,
    )
    of_org = Webhook(organization_id=world.org_id, url="https://b.example/h", created_at=T0)
    async with backend.uow() as uow:
        await uow.webhooks.add(of_session)
        await uow.webhooks.add(of_org)
        await uow.commit()
    async with backend.uow() as uow:
        await uow.sessions.delete(world.session_id)
        await uow.commit()
    async with backend.uow() as uow:
        assert [w.id for w in await uow.webhooks.for_organization(world.org_id)] == [of_org.id]


async def test_nothing_is_kept_without_a_commit(backend: Backend) -> None:
    world = await seed(backend.uow)
    webhook = Webhook(organization_id=world.org_id, url="https://a.example/h", created_at=T0)
    async with backend.uow() as uow:
        await uow.webhooks.add(webhook)
    async with backend.uow() as uow:
        assert await uow.webhooks.get(webhook.id) is None


async def test_clearing_a_session_takes_its_webhooks_deliveries_a_step_at_a_time(
    backend: Backend,
) -> None:
    """A session-scoped webhook's deliveries and their attempts go in ``sessions.clear``'s
    steps with the session's own rows (here three events), not all at once with the session
    row; the webhook itself, and an organization webhook's deliveries, stay."""
    world = await seed(backend.uow)
    event_ids = await _event_ids(backend, world.org_id, world.session_id, 3)
    of_session = Webhook(
        organization_id=world.org_id,
        session_id=world.session_id,
        url="https://a.example/h",
        created_at=T0,
    )
    of_org = Webhook(organization_id=world.org_id, url="https://b.example/h", created_at=T0)
    gone = [WebhookDelivery.new(of_session.id, e, T0) for e in event_ids]
    stays = WebhookDelivery.new(of_org.id, event_ids[0], T0)
    await _attempted(backend, [of_session, of_org], [*gone, stays])
    steps: list[int] = []
    while not steps or steps[-1] == 4:
        async with backend.uow() as uow:
            steps.append(await uow.sessions.clear(world.session_id, 4))
            await uow.commit()
    assert steps == [4, 4, 1]  # 3 deliveries, 3 attempts, 3 events
    async with backend.uow() as uow:
        assert [await uow.webhooks.get_delivery(d.id) for d in gone] == [None] * 3
        assert [await uow.webhooks.attempts_for(d.id) for d in gone] == [[]] * 3
        assert await uow.webhooks.get(of_session.id) is not None
        assert await uow.webhooks.get_delivery(stays.id) is not None
        assert len(await uow.webhooks.attempts_for(stays.id)) == 1


async def test_clearing_a_webhook_takes_its_attempts_then_its_deliveries(
    backend: Backend,
) -> None:
    """Three deliveries with an attempt each: steps of at most 4 rows take the attempts
    first, then the deliveries; the webhook and another webhook's delivery stay."""
    world = await seed(backend.uow)
    event_ids = await _event_ids(backend, world.org_id, world.session_id, 3)
    webhook = Webhook(organization_id=world.org_id, url="https://a.example/h", created_at=T0)
    other = Webhook(organization_id=world.org_id, url="https://b.example/h", created_at=T0)
    gone = [WebhookDelivery.new(webhook.id, e, T0) for e in event_ids]
    stays = WebhookDelivery.new(other.id, event_ids[0], T0)
    await _attempted(backend, [webhook, other], [*gone, stays])
    steps: list[int] = []
    while not steps or steps[-1] == 4:
        async with backend.uow() as uow:
            steps.append(await uow.webhooks.clear(webhook.id, 4))
            await uow.commit()
        if len(steps) == 1:  # the first step: the three attempts, then one delivery
            async with backend.uow() as uow:
                assert [await uow.webhooks.attempts_for(d.id) for d in gone] == [[]] * 3
    assert steps == [4, 2]
    async with backend.uow() as uow:
        assert [await uow.webhooks.get_delivery(d.id) for d in gone] == [None] * 3
        assert await uow.webhooks.get(webhook.id) is not None
        assert await uow.webhooks.get_delivery(stays.id) is not None
        assert len(await uow.webhooks.attempts_for(stays.id)) == 1
