"""Webhooks: manage them, fan stored events out to them, and deliver at least once.

``WebhookPublisher`` is the ``EventPublisher`` the event dispatcher hands each stored event: it
records one delivery per matching webhook. ``WebhookDeliveryWorker`` then POSTs the due
deliveries through a ``WebhookSender``, records every attempt and schedules the retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import NotFound, PermissionDenied, SessionNotFound, WebhookNotFound
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    DeliveryAttempt,
    DeliveryError,
    DeliveryStatus,
    RetrySchedule,
    Webhook,
    WebhookDelivery,
    sign,
    validate_webhook_url,
)
from whatsgate.ports.clock import Clock
from whatsgate.ports.publisher import EventPublisher
from whatsgate.ports.repositories import Page, UnitOfWork, UnitOfWorkFactory
from whatsgate.ports.webhooks import WebhookSender
from whatsgate.usecases._steps import clear_in_steps

log = logging.getLogger("whatsgate.webhooks")


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    default_message = "No such webhook delivery."


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    #: Accept webhook URLs on loopback and private networks (tests, local use).
    allow_private: bool = False
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    #: Deliveries claimed per round, and sent at once.
    batch: int = 50
    concurrency: int = 8
    #: A claimed delivery whose attempt never got recorded (the node died) is retried after
    #: this many seconds.
    claim_timeout: float = 120.0
    #: The worker looks for due deliveries at least this often, even when not woken (other
    #: nodes may have created or replayed some).
    poll_interval: float = 30.0


#: Told the organization whose webhooks a use case just changed (committed): the container
#: wires ``WebhookPublisher.forget`` so the very next event sees the change.
WebhooksChanged = Callable[[str], None]


def _require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise PermissionDenied("Only an admin of the organization manages webhooks.")


async def _load(uow: UnitOfWork, actor: Principal, webhook_id: str) -> Webhook:
    webhook = await uow.webhooks.get(webhook_id)
    if webhook is None or webhook.organization_id != actor.organization_id:
        raise WebhookNotFound(webhook_id=webhook_id)
    return webhook


def envelope_body(event: StoredEvent) -> bytes:
    """The JSON body of a delivery: the event's envelope, compact UTF-8."""
    return json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False).encode()


# -- managing webhooks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateWebhookCommand:
    actor: Principal
    url: str
    #: Event names (``EVENT_NAMES``); empty means every event.
    events: Sequence[str] = ()
    #: Only this session's events; None means every session of the organization.
    session_id: str | None = None
    #: Signs deliveries; None means unsigned (there is no default secret).
    secret: str | None = None


class CreateWebhook:
    """Subscribe an URL to events.

    - Admins only; the webhook belongs to the admin's organization.
    - The URL is http(s); loopback, private, link-local and reserved addresses are refused
      unless ``allow_private`` (the addresses a host name resolves to are checked again at
      every delivery, against DNS rebinding).
    - Event names are checked; none means every event.
    - ``session_id`` limits it to one session of the organization.
    - Without a secret, deliveries are not signed; with one (16 to 256 characters), they carry
      ``X-Whatsgate-Signature``.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        settings: WebhookSettings,
        changed: WebhooksChanged | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.settings = settings
        self.changed = changed

    async def __call__(self, command: CreateWebhookCommand) -> Webhook:
        actor = command.actor
        _require_admin(actor)
        url = validate_webhook_url(command.url, allow_private=self.settings.allow_private)
        webhook = Webhook(
            organization_id=actor.organization_id,
            session_id=command.session_id,
            url=url,
            events=frozenset(command.events),
            secrets=(command.secret,) if command.secret else (),
            created_at=self.clock.now(),
        )
        async with self.uow() as uow:
            if command.session_id is not None:
                session = await uow.sessions.get(command.session_id)
                if session is None or session.organization_id != actor.organization_id:
                    raise SessionNotFound(session_id=command.session_id)
            await uow.webhooks.add(webhook)
            await uow.commit()
        if self.changed is not None:
            self.changed(webhook.organization_id)
        log.info("webhook %s: created for %s", webhook.id, webhook.url)
        return webhook


@dataclass(frozen=True, slots=True, kw_only=True)
class ListWebhooksQuery:
    actor: Principal


class ListWebhooks:
    """The organization's webhooks, oldest first (admins only)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, query: ListWebhooksQuery) -> list[Webhook]:
        _require_admin(query.actor)
        async with self.uow() as uow:
            return await uow.webhooks.for_organization(query.actor.organization_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookCommand:
    actor: Principal
    webhook_id: str


class GetWebhook:
    """One webhook of the organization (admins only)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, command: WebhookCommand) -> Webhook:
        _require_admin(command.actor)
        async with self.uow() as uow:
            return await _load(uow, command.actor, command.webhook_id)


class DeleteWebhook:
    """Remove a webhook with its deliveries and their log (admins only). Nothing more is
    delivered to it, not even deliveries already due.

    It is disabled first (the worker gives up what is due for it), then its deliveries and
    attempts go ``_steps.DELETE_STEP`` rows per unit of work, then the webhook: an organization's
    webhook gets two deliveries a message of every session, and one transaction for all
    of them held SQLite's writers past every other writer's busy timeout.
    """

    def __init__(self, uow: UnitOfWorkFactory, changed: WebhooksChanged | None = None) -> None:
        self.uow = uow
        self.changed = changed

    async def __call__(self, command: WebhookCommand) -> None:
        _require_admin(command.actor)
        async with self.uow() as uow:
            webhook = await _load(uow, command.actor, command.webhook_id)
            webhook.active = False
            await uow.webhooks.save(webhook)
            await uow.commit()
        if self.changed is not None:
            self.changed(command.actor.organization_id)
        webhook_id = command.webhook_id
        await clear_in_steps(self.uow, lambda uow, step: uow.webhooks.clear(webhook_id, step))
        async with self.uow() as uow:
            await uow.webhooks.delete(command.webhook_id)
            await uow.commit()
        if self.changed is not None:
            self.changed(command.actor.organization_id)
        log.info("webhook %s: deleted", command.webhook_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RotateSecretCommand:
    actor: Principal
    webhook_id: str
    secret: str
    #: Keep signing with the current secret too, until a rotation with this False.
    keep_previous: bool = True


class RotateWebhookSecret:
    """Change a webhook's secret without losing a delivery.

    - With ``keep_previous`` deliveries carry two ``v1=`` signatures (new and old) until the
      receiver has the new secret; a later rotation without it drops the old one.
    """

    def __init__(self, uow: UnitOfWorkFactory, changed: WebhooksChanged | None = None) -> None:
        self.uow = uow
        self.changed = changed

    async def __call__(self, command: RotateSecretCommand) -> Webhook:
        _require_admin(command.actor)
        async with self.uow() as uow:
            webhook = await _load(uow, command.actor, command.webhook_id)
            webhook.rotate_secret(command.secret)
            if not command.keep_previous:
                webhook.finish_rotation()
            await uow.webhooks.save(webhook)
            await uow.commit()
        if self.changed is not None:
            self.changed(webhook.organization_id)
        return webhook


# -- the delivery log -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """A delivery with every attempt made for it."""

    delivery: WebhookDelivery
    attempts: list[DeliveryAttempt]

    def to_dict(self) -> dict[str, object]:
        return {**self.delivery.to_dict(), "attempt_log": [a.to_dict() for a in self.attempts]}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListDeliveriesQuery:
    actor: Principal
    webhook_id: str
    status: DeliveryStatus | None = None
    cursor: str | None = None
    limit: int = 50


class ListDeliveries:
    """A webhook's delivery log, newest first: each delivery with its status, the last
    status code or error, and every attempt (when, status code, error, latency)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, query: ListDeliveriesQuery) -> Page[DeliveryRecord]:
        _require_admin(query.actor)
        limit = max(1, min(query.limit, 500))
        async with self.uow() as uow:
            await _load(uow, query.actor, query.webhook_id)
            page = await uow.webhooks.deliveries(
                query.webhook_id, status=query.status, cursor=query.cursor, limit=limit
            )
            records = [
                DeliveryRecord(delivery=d, attempts=await uow.webhooks.attempts_for(d.id))
                for d in page.items
            ]
        return Page(records, page.next_cursor)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayDeliveryCommand:
    actor: Principal
    webhook_id: str
    delivery_id: str


class ReplayDelivery:
    """Send a dead (or failed) delivery again.

    - It becomes pending at once, with a fresh 24-hour retry window; its log keeps the
      earlier attempts. Delivered or pending deliveries cannot be replayed (409).
    - The delivery id sent to the receiver (the event id) is the same as before.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.wake = wake

    async def __call__(self, command: ReplayDeliveryCommand) -> WebhookDelivery:
        _require_admin(command.actor)
        async with self.uow() as uow:
            await _load(uow, command.actor, command.webhook_id)
            delivery = await uow.webhooks.get_delivery(command.delivery_id)
            if delivery is None or delivery.webhook_id != command.webhook_id:
                raise DeliveryNotFound(delivery_id=command.delivery_id)
            delivery.replay(self.clock.now())
            await uow.webhooks.save_delivery(delivery)
            await uow.commit()
        if self.wake is not None:
            self.wake()
        return delivery


# -- fan-out and delivery -------------------------------------------------------------------


class WebhookPublisher(EventPublisher):
    """Records one delivery per webhook that wants the event (same organization, its
    session or every session, its event names or all). Publishing an event twice creates no
    second delivery. Wakes the delivery worker when it created any.

    - It keeps each organization's webhooks in memory: an event that none of them wants
      opens no unit of work (most events of most organizations).
    - A change made through this process's use cases (they call ``forget``) is seen by the
      very next event; one made by another process is seen within ``refresh`` (1 s), when
      the organization's webhooks are read again.
    - An event some webhook wants reads them again in the unit of work that records its
      deliveries, so deliveries go only to webhooks stored at that moment.
    """

    #: How long an organization's webhooks read from the store are trusted.
    refresh = timedelta(seconds=1)

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.wake = wake
        #: organization id -> (read at, its webhooks)
        self._webhooks: dict[str, tuple[datetime, list[Webhook]]] = {}
        #: Bumped by ``forget``: a read that overlapped a change is not kept.
        self._generation = 0

    def forget(self, organization_id: str) -> None:
        """The organization's webhooks changed: read them again for its next event."""
        self._webhooks.pop(organization_id, None)
        self._generation += 1

    async def publish(self, event: StoredEvent) -> None:
        organization_id = event.organization_id
        now = self.clock.now()
        known = self._webhooks.get(organization_id)
        if (
            known is not None
            and timedelta(0) <= now - known[0] < self.refresh
            and not any(webhook.wants(event) for webhook in known[1])
        ):
            return
        created = 0
        generation = self._generation
        async with self.uow() as uow:
            webhooks = await uow.webhooks.for_organization(organization_id)
            if generation == self._generation:
                self._webhooks[organization_id] = (now, webhooks)
            for webhook in webhooks:
                if webhook.wants(event):
                    delivery = WebhookDelivery.new(webhook.id, event.id, now)
                    created += await uow.webhooks.add_delivery(delivery)
            if created:
                await uow.commit()
        if created and self.wake is not None:
            self.wake()


@dataclass(slots=True)
class _Job:
    delivery: WebhookDelivery
    webhook: Webhook | None
    event: StoredEvent | None


class WebhookDeliveryWorker:
    """Delivers due webhook deliveries, at least once.

    - Each attempt POSTs the event's envelope with ``X-Whatsgate-Event``,
      ``X-Whatsgate-Delivery`` (the event id: the same on every retry) and, when the webhook
      has secrets, ``X-Whatsgate-Signature`` signed at the attempt's time.
    - 2xx: delivered. No answer, 5xx, 408 or 429: retried after 10 s, 30 s, 1 min, 2 min,
      5 min, then every 5 min for 24 h, then dead. Any other answer: failed at once.
    - Every attempt is logged (time, status code or error, latency).
    - A delivery is claimed (its next attempt moved ``claim_timeout`` ahead) before it is
      sent, so two workers never send it at once and a crash mid-send only delays it.
    - A delivery whose webhook is disabled or whose event is gone fails without an attempt.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        sender: WebhookSender,
        clock: Clock,
        settings: WebhookSettings | None = None,
    ) -> None:
        self.uow = uow
        self.sender = sender
        self.clock = clock
        self.settings = settings or WebhookSettings()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New or replayed deliveries exist: look now rather than at the next due time."""
        self._wakeup.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="whatsgate-webhooks")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Deliver forever: due deliveries, then sleep until the next is due or a wake."""
        while True:
            self._wakeup.clear()
            try:
                await self.run_once()
                async with self.uow() as uow:
                    next_at = await uow.webhooks.next_delivery_at()
            except Exception:
                log.exception("webhook delivery round failed")
                next_at = None
            wait = self.settings.poll_interval
            if next_at is not None:
                wait = min(wait, max(0.0, (next_at - self.clock.now()).total_seconds()))
            await self._idle(wait)

    async def _idle(self, seconds: float) -> None:
        if self._wakeup.is_set():
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def run_once(self) -> int:
        """Attempt every delivery due now; returns how many attempts were made."""
        made = 0
        semaphore = asyncio.Semaphore(self.settings.concurrency)

        async def attempt(job: _Job) -> bool:
            async with semaphore:
                return await self._attempt(job)

        while True:
            jobs = await self._claim()
            if not jobs:
                return made
            results = await asyncio.gather(*(attempt(job) for job in jobs))
            made += sum(results)

    async def _claim(self) -> list[_Job]:
        now = self.clock.now()
        jobs: list[_Job] = []
        async with self.uow() as uow:
            due = await uow.webhooks.due_deliveries(now, limit=self.settings.batch)
            for delivery in due:
                delivery.claim(now + timedelta(seconds=self.settings.claim_timeout))
                await uow.webhooks.save_delivery(delivery)
                webhook = await uow.webhooks.get(delivery.webhook_id)
                found = await uow.events.after(delivery.event_id - 1, limit=1)
                event = found[0] if found and found[0].id == delivery.event_id else None
                jobs.append(_Job(delivery, webhook, event))
            if due:
                await uow.commit()
        return jobs

    async def _attempt(self, job: _Job) -> bool:
        delivery, webhook, event = job.delivery, job.webhook, job.event
        if webhook is None or event is None or not webhook.active:
            reason = (
                "the event is no longer stored"
                if event is None
                else "the webhook was removed or disabled"
            )
            await self._give_up(delivery.id, reason)
            return False
        body = envelope_body(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "whatsgate-webhooks",
            EVENT_HEADER: event.name,
            DELIVERY_HEADER: str(event.id),
        }
        at = self.clock.now()
        if webhook.secrets:
            headers[SIGNATURE_HEADER] = sign(webhook.secrets, int(at.timestamp()), body)
        status: int | None = None
        error: str | None = None
        retryable: bool | None = None
        started = time.perf_counter()
        try:
            status = await self.sender.send(webhook.url, body, headers)
        except DeliveryError as exc:
            error, retryable = exc.message, exc.retryable
        except Exception as exc:  # a bug in a sender must not stop the deliveries
            log.exception("webhook %s: sender failed", webhook.id)
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - started) * 1000
        attempt = await self._record(
            delivery.id,
            at=at,
            status=status,
            error=error,
            retryable=retryable,
            latency_ms=latency_ms,
        )
        if attempt is not None:
            log.info(
                "webhook %s: event %s attempt %d -> %s",
                webhook.id,
                event.id,
                attempt.attempt,
                status if status is not None else error,
            )
        return True

    async def _give_up(self, delivery_id: str, reason: str) -> None:
        async with self.uow() as uow:
            delivery = await uow.webhooks.get_delivery(delivery_id)
            if delivery is None or not delivery.is_pending:
                return
            delivery.give_up(reason, self.clock.now())
            await uow.webhooks.save_delivery(delivery)
            await uow.commit()

    async def _record(
        self,
        delivery_id: str,
        *,
        at: datetime,
        status: int | None,
        error: str | None,
        retryable: bool | None,
        latency_ms: float,
    ) -> DeliveryAttempt | None:
        async with self.uow() as uow:
            delivery = await uow.webhooks.get_delivery(delivery_id)
            if delivery is None or not delivery.is_pending:
                return None  # deleted with its webhook meanwhile
            delivery.record(
                status, error, self.clock.now(), self.settings.schedule, retryable=retryable
            )
            attempt = DeliveryAttempt(
                delivery_id=delivery_id,
                attempt=len(await uow.webhooks.attempts_for(delivery_id)) + 1,
                at=at,
                status_code=status,
                error=error,
                latency_ms=round(latency_ms, 3),
            )
            await uow.webhooks.add_attempt(attempt)
            await uow.webhooks.save_delivery(delivery)
            await uow.commit()
        return attempt
