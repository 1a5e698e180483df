from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import InvalidInput, PermissionDenied, SessionNotFound, WebhookNotFound
from whatsgate.domain.events import ContactsSynced, ConversationUpdated, StoredEvent
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.session import Session
from whatsgate.domain.webhook import (
    DeliveryError,
    DeliveryNotReplayable,
    DeliveryStatus,
    DestinationRefused,
    InvalidWebhookUrl,
    Webhook,
    verify_signature,
)
from whatsgate.testing import FakeClock, FakeWebhookSender, MemoryStore, MemoryUnitOfWork
from whatsgate.usecases import _steps
from whatsgate.usecases.webhooks import (
    CreateWebhook,
    CreateWebhookCommand,
    DeleteWebhook,
    ListDeliveries,
    ListDeliveriesQuery,
    ListWebhooks,
    ListWebhooksQuery,
    ReplayDelivery,
    ReplayDeliveryCommand,
    RotateSecretCommand,
    RotateWebhookSecret,
    WebhookCommand,
    WebhookDeliveryWorker,
    WebhookPublisher,
    WebhookSettings,
)

SECRET = "a-webhook-secret-of-some-length"
URL = "https://hooks.example.com/whatsgate"


@dataclass
class Hooks:
    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=FakeClock)
    sender: FakeWebhookSender = field(default_factory=FakeWebhookSender)
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    #: Units of work the publisher opened.
    publisher_uows: int = 0

    def __post_init__(self) -> None:
        self.worker = WebhookDeliveryWorker(self.uow, self.sender, self.clock, self.settings)
        self.publisher = WebhookPublisher(self.publisher_uow, self.clock, self.worker.wake)
        changed = self.publisher.forget  # as the container wires them
        self.create = CreateWebhook(self.uow, self.clock, self.settings, changed)
        self.list = ListWebhooks(self.uow)
        self.delete = DeleteWebhook(self.uow, changed)
        self.deliveries = ListDeliveries(self.uow)
        self.replay = ReplayDelivery(self.uow, self.clock, self.worker.wake)
        self.rotate = RotateWebhookSecret(self.uow, changed)

    def uow(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.store)

    def publisher_uow(self) -> MemoryUnitOfWork:
        self.publisher_uows += 1
        return MemoryUnitOfWork(self.store)

    async def organization(self, name: str) -> tuple[Principal, Principal, Session]:
        now = self.clock.now()
        org = Organization(name=name, created_at=now)
        admin = User(organization_id=org.id, name="Ana", role=Role.ADMIN, created_at=now)
        agent = User(organization_id=org.id, name="Bo", role=Role.AGENT, created_at=now)
        session = Session(organization_id=org.id, owner_id=admin.id, name="sales", created_at=now)
        async with self.uow() as uow:
            await uow.organizations.add(org)
            await uow.users.add(admin)
            await uow.users.add(agent)
            await uow.sessions.add(session)
            await uow.commit()
        return (
            Principal(user_id=admin.id, organization_id=org.id, role=Role.ADMIN),
            Principal(user_id=agent.id, organization_id=org.id, role=Role.AGENT),
            session,
        )

    async def event(self, session: Session, count: int = 3) -> StoredEvent:
        """Store an event and hand it to the publisher, as the dispatcher does."""
        async with self.uow() as uow:
            uow.events.add(
                ContactsSynced(
                    organization_id=session.organization_id,
                    session_id=session.id,
                    occurred_at=self.clock.now(),
                    count=count,
                )
            )
            await uow.commit()
        stored = self.store.events[-1]
        await self.publisher.publish(stored)
        return stored

    async def log(self, admin: Principal, webhook: Webhook) -> list[dict[str, object]]:
        page = await self.deliveries(ListDeliveriesQuery(actor=admin, webhook_id=webhook.id))
        return [r.to_dict() for r in page.items]


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


async def test_a_delivery_posts_the_envelope_with_its_headers_and_a_valid_signature(
    hooks: Hooks,
) -> None:
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL, secret=SECRET))
    event = await hooks.event(session)

    assert await hooks.worker.run_once() == 1

    [request] = hooks.sender.requests
    assert request.url == URL
    assert json.loads(request.body) == event.envelope()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Whatsgate-Event"] == "contacts.synced"
    assert request.headers["X-Whatsgate-Delivery"] == str(event.id)
    assert verify_signature(
        request.headers["X-Whatsgate-Signature"],
        request.body,
        SECRET,
        now=hooks.clock.now().timestamp(),
    )
    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "delivered"
    assert [a["status_code"] for a in record["attempt_log"]] == [200]  # type: ignore[union-attr]


async def test_without_a_secret_deliveries_are_not_signed(hooks: Hooks) -> None:
    admin, _, session = await hooks.organization("Acme")
    await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    await hooks.worker.run_once()
    [request] = hooks.sender.requests
    assert "X-Whatsgate-Signature" not in request.headers


async def test_one_delivery_per_matching_webhook_and_never_twice_for_an_event(
    hooks: Hooks,
) -> None:
    admin, _, session = await hooks.organization("Acme")
    other_admin, _, other_session = await hooks.organization("Other")
    every = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    of_session = await hooks.create(
        CreateWebhookCommand(actor=admin, url=URL + "/s", session_id=session.id)
    )
    other_events = await hooks.create(
        CreateWebhookCommand(actor=admin, url=URL + "/e", events=["message.new"])
    )
    foreign = await hooks.create(CreateWebhookCommand(actor=other_admin, url=URL + "/f"))

    event = await hooks.event(session)
    await hooks.publisher.publish(event)  # published again (a dispatcher retry): no new delivery

    assert len(await hooks.log(admin, every)) == 1
    assert len(await hooks.log(admin, of_session)) == 1
    assert await hooks.log(admin, other_events) == []
    assert await hooks.log(other_admin, foreign) == []
    await hooks.worker.run_once()
    assert sorted(r.url for r in hooks.sender.requests) == [URL, URL + "/s"]
    assert other_session.id != session.id


async def test_a_failing_receiver_is_retried_on_schedule_until_it_accepts(hooks: Hooks) -> None:
    hooks.sender.answers = [500, DeliveryError("connection refused"), 429, 408, 200]
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL, secret=SECRET))
    event = await hooks.event(session)
    start = hooks.clock.now()

    await hooks.worker.run_once()
    for wait in (10, 30, 60, 120):
        await hooks.clock.advance(wait - 1)
        assert await hooks.worker.run_once() == 0  # not yet due
        await hooks.clock.advance(1)
        assert await hooks.worker.run_once() == 1

    [record] = await hooks.log(admin, webhook)
    attempts = record["attempt_log"]
    assert isinstance(attempts, list)
    assert [a["status_code"] for a in attempts] == [500, None, 429, 408, 200]
    assert attempts[1]["error"] == "connection refused"
    offsets = [(r.at - start).total_seconds() for r in await _attempts(hooks, webhook)]
    assert offsets == [0, 10, 40, 100, 220]
    assert record["status"] == "delivered"
    # The delivery id is the event id on every try; each try is signed at its own time.
    assert {r.headers["X-Whatsgate-Delivery"] for r in hooks.sender.requests} == {str(event.id)}
    assert len({r.headers["X-Whatsgate-Signature"] for r in hooks.sender.requests}) == 5


async def _attempts(hooks: Hooks, webhook: Webhook) -> list:  # type: ignore[type-arg]
    async with hooks.uow() as uow:
        page = await uow.webhooks.deliveries(webhook.id)
        return await uow.webhooks.attempts_for(page.items[0].id)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_other_4xx_answers_fail_at_once(hooks: Hooks, status: int) -> None:
    hooks.sender.answers = [status]
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    await hooks.worker.run_once()
    await hooks.clock.advance(3600)
    await hooks.worker.run_once()
    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "failed"
    assert record["last_status_code"] == status
    assert len(hooks.sender.requests) == 1


async def test_a_refused_destination_fails_at_once(hooks: Hooks) -> None:
    hooks.sender.answers = [DestinationRefused("resolves to 10.0.0.1")]
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    await hooks.worker.run_once()
    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "failed"
    assert record["last_error"] == "resolves to 10.0.0.1"


async def test_after_24_hours_of_failures_the_delivery_is_dead_and_can_be_replayed(
    hooks: Hooks,
) -> None:
    hooks.sender.default = 503
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    start = hooks.clock.now()

    while True:
        await hooks.worker.run_once()
        async with hooks.uow() as uow:
            next_at = await uow.webhooks.next_delivery_at()
        if next_at is None:
            break
        await hooks.clock.advance((next_at - hooks.clock.now()).total_seconds())

    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "dead"
    assert len(hooks.sender.requests) == 1 + 5 + 286
    assert hooks.clock.now() - start <= timedelta(hours=24)

    hooks.sender.default = 200
    delivery_id = record["id"]
    assert isinstance(delivery_id, str)
    replayed = await hooks.replay(
        ReplayDeliveryCommand(actor=admin, webhook_id=webhook.id, delivery_id=delivery_id)
    )
    assert replayed.status is DeliveryStatus.PENDING
    await hooks.worker.run_once()
    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "delivered"
    attempts = record["attempt_log"]
    assert isinstance(attempts, list)
    assert len(attempts) == 293
    assert attempts[-1]["attempt"] == 293
    with pytest.raises(DeliveryNotReplayable):
        await hooks.replay(
            ReplayDeliveryCommand(actor=admin, webhook_id=webhook.id, delivery_id=delivery_id)
        )


async def test_the_worker_loop_delivers_when_woken_and_retries_when_due(hooks: Hooks) -> None:
    hooks.sender.answers = [503]
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    hooks.worker.start()
    try:
        await hooks.event(session)
        await hooks.clock.advance(0)
        assert len(hooks.sender.requests) == 1
        await hooks.clock.advance(9)
        assert len(hooks.sender.requests) == 1
        await hooks.clock.advance(1)
        assert len(hooks.sender.requests) == 2
    finally:
        await hooks.worker.close()
    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "delivered"


async def test_urls_on_private_networks_are_refused_unless_allowed(hooks: Hooks) -> None:
    admin, _, _ = await hooks.organization("Acme")
    with pytest.raises(InvalidWebhookUrl):
        await hooks.create(CreateWebhookCommand(actor=admin, url="http://127.0.0.1:9000/h"))
    with pytest.raises(InvalidWebhookUrl):
        await hooks.create(CreateWebhookCommand(actor=admin, url="http://192.168.0.5/h"))
    local = Hooks(settings=WebhookSettings(allow_private=True))
    admin, _, _ = await local.organization("Acme")
    webhook = await local.create(CreateWebhookCommand(actor=admin, url="http://127.0.0.1:9000/h"))
    assert webhook.url == "http://127.0.0.1:9000/h"


async def test_bad_input_is_refused(hooks: Hooks) -> None:
    admin, _, _ = await hooks.organization("Acme")
    _, _, foreign_session = await hooks.organization("Other")
    with pytest.raises(InvalidInput):
        await hooks.create(CreateWebhookCommand(actor=admin, url=URL, events=["nope"]))
    with pytest.raises(InvalidInput):
        await hooks.create(CreateWebhookCommand(actor=admin, url=URL, secret="short"))
    with pytest.raises(SessionNotFound):
        await hooks.create(
            CreateWebhookCommand(actor=admin, url=URL, session_id=foreign_session.id)
        )
    assert await hooks.list(ListWebhooksQuery(actor=admin)) == []


async def test_webhooks_are_for_admins_of_their_own_organization(hooks: Hooks) -> None:
    admin, agent, _ = await hooks.organization("Acme")
    other_admin, _, _ = await hooks.organization("Other")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    with pytest.raises(PermissionDenied):
        await hooks.create(CreateWebhookCommand(actor=agent, url=URL))
    with pytest.raises(PermissionDenied):
        await hooks.list(ListWebhooksQuery(actor=agent))
    assert await hooks.list(ListWebhooksQuery(actor=other_admin)) == []
    with pytest.raises(WebhookNotFound):
        await hooks.delete(WebhookCommand(actor=other_admin, webhook_id=webhook.id))
    with pytest.raises(WebhookNotFound):
        await hooks.deliveries(ListDeliveriesQuery(actor=other_admin, webhook_id=webhook.id))
    assert await hooks.list(ListWebhooksQuery(actor=admin)) == [webhook]


async def test_a_deleted_webhook_gets_nothing_more(hooks: Hooks) -> None:
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    await hooks.delete(WebhookCommand(actor=admin, webhook_id=webhook.id))
    await hooks.event(session)
    assert await hooks.worker.run_once() == 0
    assert hooks.sender.requests == []
    assert await hooks.list(ListWebhooksQuery(actor=admin)) == []
    assert hooks.store.deliveries == {}


async def test_a_secret_rotation_signs_with_both_secrets_until_finished(hooks: Hooks) -> None:
    new_secret = "the-new-secret-of-this-hook"
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL, secret=SECRET))
    await hooks.rotate(RotateSecretCommand(actor=admin, webhook_id=webhook.id, secret=new_secret))
    await hooks.event(session)
    await hooks.worker.run_once()
    await hooks.rotate(
        RotateSecretCommand(
            actor=admin, webhook_id=webhook.id, secret=new_secret, keep_previous=False
        )
    )
    await hooks.event(session)
    await hooks.worker.run_once()

    now = hooks.clock.now().timestamp()
    during, after = hooks.sender.requests
    for secret in (SECRET, new_secret):
        assert verify_signature(
            during.headers["X-Whatsgate-Signature"], during.body, secret, now=now
        )
    assert verify_signature(after.headers["X-Whatsgate-Signature"], after.body, new_secret, now=now)
    assert not verify_signature(after.headers["X-Whatsgate-Signature"], after.body, SECRET, now=now)


async def test_conversation_events_reach_webhooks_like_any_other(hooks: Hooks) -> None:
    admin, _, session = await hooks.organization("Acme")
    await hooks.create(CreateWebhookCommand(actor=admin, url=URL, events=["conversation.updated"]))
    async with hooks.uow() as uow:
        uow.events.add(
            ConversationUpdated(
                organization_id=session.organization_id,
                session_id=session.id,
                occurred_at=hooks.clock.now(),
                conversation={"id": "c1", "assignee_id": admin.user_id, "unread_count": 2},
            )
        )
        await uow.commit()
    await hooks.publisher.publish(hooks.store.events[-1])
    await hooks.worker.run_once()
    [request] = hooks.sender.requests
    assert json.loads(request.body)["data"] == {
        "id": "c1",
        "assignee_id": admin.user_id,
        "unread_count": 2,
    }


async def test_a_claimed_delivery_whose_attempt_was_never_recorded_comes_back(
    hooks: Hooks,
) -> None:
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    crashed = WebhookDeliveryWorker(hooks.uow, hooks.sender, hooks.clock, hooks.settings)
    assert len(await crashed._claim()) == 1  # claimed, then the node died before sending

    assert await hooks.worker.run_once() == 0  # another worker leaves it alone
    await hooks.clock.advance(hooks.settings.claim_timeout)
    assert await hooks.worker.run_once() == 1
    [record] = await hooks.log(admin, webhook)
    assert record["status"] == "delivered"
    assert len(hooks.sender.requests) == 1


# -- the publisher's memory of each organization's webhooks ----------------------------------


async def test_webhooks_changed_through_the_use_cases_reach_the_very_next_event(
    hooks: Hooks,
) -> None:
    admin, _, session = await hooks.organization("Acme")
    await hooks.event(session)  # the publisher now knows Acme has no webhook
    assert hooks.store.deliveries == {}

    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL, secret=SECRET))
    first = await hooks.event(session)  # same instant: no refresh would have seen it
    assert [r["event_id"] for r in await hooks.log(admin, webhook)] == [str(first.id)]

    new_secret = "another-webhook-secret-1234"
    await hooks.rotate(
        RotateSecretCommand(
            actor=admin, webhook_id=webhook.id, secret=new_secret, keep_previous=False
        )
    )
    await hooks.event(session)
    await hooks.worker.run_once()
    last = hooks.sender.requests[-1]
    assert verify_signature(
        last.headers["X-Whatsgate-Signature"],
        last.body,
        new_secret,
        now=hooks.clock.now().timestamp(),
    )
    assert len(await hooks.log(admin, webhook)) == 2

    await hooks.delete(WebhookCommand(actor=admin, webhook_id=webhook.id))
    await hooks.event(session)
    assert hooks.store.deliveries == {}
    opened = hooks.publisher_uows
    await hooks.event(session)
    assert hooks.publisher_uows == opened  # known again: no webhook, no unit of work


async def test_a_webhook_stored_by_another_process_is_seen_within_a_second(
    hooks: Hooks,
) -> None:
    admin, _, session = await hooks.organization("Acme")
    await hooks.event(session)
    webhook = Webhook(organization_id=admin.organization_id, url=URL, created_at=hooks.clock.now())
    async with hooks.uow() as uow:  # behind the publisher's back
        await uow.webhooks.add(webhook)
        await uow.commit()

    await hooks.clock.advance(0.9)
    await hooks.event(session)  # within the window: not seen yet
    assert hooks.store.deliveries == {}

    await hooks.clock.advance(0.1)
    event = await hooks.event(session)  # a second after the last read: read again
    assert [d.event_id for d in hooks.store.deliveries.values()] == [event.id]
    assert {d.webhook_id for d in hooks.store.deliveries.values()} == {webhook.id}


async def test_a_webhook_removed_by_another_process_gets_no_delivery(hooks: Hooks) -> None:
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    await hooks.event(session)
    assert len(hooks.store.deliveries) == 1
    async with hooks.uow() as uow:  # behind the publisher's back, which still knows it
        await uow.webhooks.delete(webhook.id)
        await uow.commit()
    await hooks.event(session)  # read again before recording: nothing recorded
    assert hooks.store.deliveries == {}


async def test_no_unit_of_work_for_an_event_no_webhook_wants(hooks: Hooks) -> None:
    admin, _, session = await hooks.organization("Acme")
    _, _, quiet_session = await hooks.organization("Quiet")
    await hooks.create(CreateWebhookCommand(actor=admin, url=URL, events=["message.new"]))

    await hooks.event(quiet_session)
    await hooks.event(session)
    assert hooks.publisher_uows == 2  # one read per organization
    for _ in range(20):
        await hooks.event(quiet_session)  # an organization without webhooks
        await hooks.event(session)  # a webhook, but not for contacts.synced
    assert hooks.publisher_uows == 2
    assert hooks.store.deliveries == {}

    await hooks.create(CreateWebhookCommand(actor=admin, url=URL + "/all"))
    await hooks.event(session)
    await hooks.event(session)
    assert hooks.publisher_uows == 4  # a wanted event records its delivery in one
    assert len(hooks.store.deliveries) == 2


async def test_a_webhook_is_disabled_then_deleted_in_steps(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disabled first (in its own unit of work), then its deliveries and attempts go
    ``DELETE_STEP`` rows per unit of work, then the webhook: an organization's webhook has
    deliveries of every session's events."""
    monkeypatch.setattr(_steps, "DELETE_STEP", 2)
    admin, _, session = await hooks.organization("Acme")
    webhook = await hooks.create(CreateWebhookCommand(actor=admin, url=URL))
    for _ in range(5):
        await hooks.event(session)
    assert len(hooks.store.deliveries) == 5
    seen: list[tuple[bool | None, int]] = []  # after each commit: active, deliveries left

    class Watching(MemoryUnitOfWork):
        async def commit(self) -> None:
            await super().commit()
            stored = hooks.store.webhooks.get(webhook.id)
            seen.append((stored.active if stored else None, len(hooks.store.deliveries)))

    hooks.delete.uow = lambda: Watching(hooks.store)
    await hooks.delete(WebhookCommand(actor=admin, webhook_id=webhook.id))
    assert seen == [(False, 5), (False, 3), (False, 1), (False, 0), (None, 0)]
