"""Delivering the outbox: DeliverOutbox sends what is due, OutboxWorker keeps it running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from whatsgate.domain.errors import (
    FeatureUnavailable,
    InvalidInput,
    RateLimited,
    SessionNotConnected,
    SessionNotRunning,
    WhatsgateError,
)
from whatsgate.domain.events import MessageStatusChanged
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message, MessageKind, MessageStatus
from whatsgate.domain.outbox import OutboxEntry, RetryPolicy, SendAttempt
from whatsgate.domain.pacing import HumanTyping, PacingPolicy, SendPacer
from whatsgate.domain.session import Session
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import (
    EngineConnection,
    OutgoingMessage,
    SendResult,
    TypingState,
)
from whatsgate.ports.media import MediaStore
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory
from whatsgate.usecases.connections import SessionConnections

log = logging.getLogger("whatsgate.outbox")

#: Errors no retry can mend: the content itself is refused.
_PERMANENT = (InvalidInput, FeatureUnavailable)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pacing: PacingPolicy = field(default_factory=PacingPolicy)
    typing: HumanTyping = field(default_factory=HumanTyping)
    #: How often a session that is not connected is looked at again (its queue waits).
    offline_recheck: float = 15.0
    #: The pause of a session's outbox after a rate limit that does not say until when.
    rate_limit_pause: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverCommand:
    #: Only this session's queue (all sessions when None).
    session_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReport:
    sent: int = 0
    #: Failed attempts that will be retried.
    retried: int = 0
    failed: int = 0
    #: Pauses: pacing holds, rate limits.
    held: int = 0
    #: When something may be due next (None: the outbox is empty).
    next_due_at: datetime | None = None


@dataclass
class _Tally:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0


class DeliverOutbox:
    """One pass of the outbox worker: send every entry that is due, then say when to look again.

    - Each session sends its entries one after the other, in the order they were queued:
      entry N+1 never goes before entry N is sent or failed for good.
    - Pacing (anti-ban) decides when a session may send; a message held back past the budget
      is flagged ``throttled`` until it goes. Nothing is dropped.
    - A failed send is retried on the ladder (10 s, 30 s, 60 s, 2 min, 5 min by default, the
      last step repeating) up to the number of attempts, then the message is ``failed`` and
      ``message.status`` carries the error. Content WhatsApp refuses fails at once.
    - A rate limit or a temporary ban pauses the session's outbox until it may send again,
      spending no attempt. A session that is not connected holds its queue.
    - Every attempt is logged: time, latency, request summary, response or error.
    - Sent: the message takes its WhatsApp id and ``sent``, and ``message.status`` is published.
    - Optionally human-like: before a first attempt, mark the chat read and show "typing…"
      for a time that grows with the text.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        clock: Clock,
        media: MediaStore,
        pacer: SendPacer,
        settings: OutboxSettings,
        rng: random.Random,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock
        self.media = media
        self.pacer = pacer
        self.settings = settings
        self.rng = rng
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, command: DeliverCommand) -> DeliveryReport:
        async with self.uow() as uow:
            heads = await uow.outbox.heads(command.session_id)
        tally = _Tally()
        sessions = list(dict.fromkeys(h.session_id for h in heads))
        nexts = await asyncio.gather(*(self._drain(sid, tally) for sid in sessions))
        return DeliveryReport(
            sent=tally.sent,
            retried=tally.retried,
            failed=tally.failed,
            held=tally.held,
            next_due_at=min((n for n in nexts if n is not None), default=None),
        )

    async def _drain(self, session_id: str, tally: _Tally) -> datetime | None:
        """Send the session's due entries in order; returns when to look at it again."""
        async with self._locks.setdefault(session_id, asyncio.Lock()):
            while True:
                done, look_again = await self._next(session_id, tally)
                if done:
                    return look_again

    async def _next(self, session_id: str, tally: _Tally) -> tuple[bool, datetime | None]:
        """Deal with the session's head entry: (done for now, when to look again)."""
        now = self.clock.now()
        async with self.uow() as uow:
            heads = await uow.outbox.heads(session_id)
            if not heads:
                return True, None
            entry = heads[0]
            if entry.next_attempt_at > now:
                return True, entry.next_attempt_at
            session = await uow.sessions.get(session_id)
            connection = self._connection(session)
            if session is None or connection is None:
                recheck = now + timedelta(seconds=self.settings.offline_recheck)
                if session is not None and session.banned_until is not None:
                    recheck = max(recheck, session.banned_until)  # no use asking before
                return True, recheck
            slot = self.pacer.slot(session_id, now)
            if slot.at > now:
                if slot.throttled and not (entry.throttled and entry.next_attempt_at == slot.at):
                    entry.hold(slot.at, now, throttled=True)
                    await uow.outbox.save(entry)
                    await uow.commit()
                    tally.held += 1
                    log.info(
                        "session %s: message %s held back by pacing until %s",
                        session_id,
                        entry.message_id,
                        slot.at.isoformat(),
                        extra={"session_id": session_id, "message_id": entry.message_id},
                    )
                return True, slot.at
            message = await uow.messages.get(entry.message_id)
            if message is None:
                entry.give_up("the message no longer exists", now)
                await uow.outbox.save(entry)
                await uow.commit()
                return False, None
            outgoing = await self._outgoing(uow, message)
            if outgoing is None:
                error = "the media bytes are no longer stored"
                entry.give_up(error, now)
                message.advance_status(MessageStatus.FAILED, error=error)
                uow.events.add(MessageStatusChanged.of(message, now))
                await uow.outbox.save(entry)
                await uow.messages.save(message)
                await uow.commit()
                tally.failed += 1
                return False, None
        if self.settings.typing.enabled and entry.attempts == 0:
            await self._act_human(connection, message)
        look_again = await self._attempt(session, entry, message, connection, outgoing, tally)
        return look_again is not None, look_again

    def _connection(self, session: Session | None) -> EngineConnection | None:
        if session is None or not session.is_connected:
            return None
        try:
            return self.connections.get(session.id)
        except SessionNotRunning:
            return None

    async def _outgoing(self, uow: UnitOfWork, message: Message) -> OutgoingMessage | None:
        data = None
        if message.media is not None:
            key = message.media.storage_key
            data = await self.media.get(key) if key is not None else None
            if data is None:
                return None
        return OutgoingMessage(
            to=message.chat,
            kind=message.kind,
            text=message.text,
            media=message.media,
            media_data=data,
            location=message.location,
            contact=message.contact,
            quoted_wa_id=message.quoted_wa_id,
            quoted_sender=await _sender_of(uow, message.session_id, message.quoted_wa_id),
            target_wa_id=message.target_wa_id,
            target_sender=await _sender_of(uow, message.session_id, message.target_wa_id),
        )

    async def _act_human(self, connection: EngineConnection, message: Message) -> None:
        """Read the chat, type for a while: what a person does before sending."""
        try:
            async with self.uow() as uow:
                page = await uow.messages.list_for_conversation(message.conversation_id, limit=20)
            inbound = [m for m in page.items if m.is_inbound and m.wa_id]
            last = inbound[-1] if inbound else None
            if last is not None and last.wa_id:
                sender = last.sender if message.chat.is_group else None
                await connection.mark_read(message.chat, sender, [last.wa_id])
            voice = message.kind is MessageKind.VOICE
            state = TypingState.RECORDING if voice else TypingState.COMPOSING
            await connection.send_typing(message.chat, state)
            await self.clock.sleep(self.settings.typing.duration(message.text, self.rng))
        except WhatsgateError as exc:
            log.info("session %s: human-like gestures skipped: %s", message.session_id, exc)

    async def _attempt(
        self,
        session: Session,
        entry: OutboxEntry,
        message: Message,
        connection: EngineConnection,
        outgoing: OutgoingMessage,
        tally: _Tally,
    ) -> datetime | None:
        started = self.clock.now()
        result: SendResult | None = None
        error: BaseException | None = None
        try:
            result = await connection.send(outgoing)
        except Exception as exc:
            error = exc
        finished = self.clock.now()
        if not isinstance(error, SessionNotConnected):
            self.pacer.record(session.id, started)
        async with self.uow() as uow:
            current = await uow.outbox.get_for_message(entry.message_id)
            stored = await uow.messages.get(message.id)
            if current is None or stored is None or not current.is_pending:
                return None  # deleted meanwhile
            attempt = SendAttempt(
                organization_id=current.organization_id,
                session_id=current.session_id,
                outbox_id=current.id,
                message_id=current.message_id,
                attempt=current.attempts + 1,
                started_at=started,
                latency_ms=(finished - started).total_seconds() * 1000,
                request_summary=outgoing.summary(),
                ok=result is not None,
                response=f"wa_id={result.wa_id}" if result is not None else None,
                error=_describe(error) if error is not None else None,
            )
            await uow.outbox.add_attempt(attempt)
            look_again: datetime | None = None
            if result is not None:
                current.succeed(finished)
                stored.wa_id = result.wa_id
                if stored.advance_status(MessageStatus.SENT):
                    uow.events.add(MessageStatusChanged.of(stored, finished))
                await self._apply_reaction(uow, session, stored)
                tally.sent += 1
            elif isinstance(error, RateLimited):
                until = error.until or finished + timedelta(seconds=self.settings.rate_limit_pause)
                current.hold(until, finished, throttled=True)
                tally.held += 1
                log.warning(
                    "session %s: rate limited by WhatsApp; outbox paused until %s",
                    session.id,
                    until.isoformat(),
                    extra={"session_id": session.id},
                )
                look_again = until
            elif isinstance(error, SessionNotConnected):
                look_again = finished + timedelta(seconds=self.settings.offline_recheck)
            else:
                description = _describe(error)
                if isinstance(error, _PERMANENT):
                    current.give_up(description, finished)
                    last = True
                else:
                    last = current.fail_attempt(description, finished, self.settings.retry)
                if last:
                    stored.advance_status(MessageStatus.FAILED, error=description)
                    uow.events.add(MessageStatusChanged.of(stored, finished))
                    tally.failed += 1
                else:
                    tally.retried += 1
                    look_again = current.next_attempt_at
                log.warning(
                    "session %s: message %s attempt %d failed%s: %s",
                    session.id,
                    stored.id,
                    current.attempts,
                    " (giving up)" if last else "",
                    description,
                    extra={"session_id": session.id, "message_id": stored.id},
                )
            await uow.outbox.save(current)
            await uow.messages.save(stored)
            await uow.commit()
        if result is not None:
            log.info(
                "session %s: message %s sent as %s (attempt %d, %.0f ms)",
                session.id,
                message.id,
                result.wa_id,
                attempt.attempt,
                attempt.latency_ms,
                extra={"session_id": session.id, "message_id": message.id},
            )
        if look_again is None:
            return None  # go on with the session's next entry
        return look_again if look_again > self.clock.now() else None

    @staticmethod
    async def _apply_reaction(uow: UnitOfWork, session: Session, message: Message) -> None:
        """Our reaction went out: the message reacted to shows it."""
        if message.kind is not MessageKind.REACTION or not message.target_wa_id:
            return
        if session.jid is None:
            return
        target = await uow.messages.get_by_wa_id(session.id, message.target_wa_id)
        if target is not None:
            target.apply_reaction(session.jid, message.text or "")
            await uow.messages.save(target)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, WhatsgateError):
        return f"{error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"


# -- the worker -----------------------------------------------------------------------------


class OutboxWorker:
    """Runs DeliverOutbox for as long as the process lives.

    - Woken at once when a message is queued (the ``wake`` event SendMessage sets); otherwise
      it sleeps on the Clock until the next entry may be due. No polling while idle.
    - A pass that fails is logged and tried again after ``first_error_pause`` seconds (0.1),
      twice as long after each failure in a row, at most ``error_pause`` (5); a pass that
      succeeds starts the count again. A passing hiccup (the database busy for a moment) costs
      a tenth of a second, not five; a lasting failure is not retried in a tight loop.
    - ``stop`` lets the pass in progress finish (a send is never cut in half), then returns.
    """

    def __init__(
        self,
        deliver: DeliverOutbox,
        clock: Clock,
        wake: asyncio.Event,
        *,
        error_pause: float = 5.0,
        first_error_pause: float = 0.1,
    ) -> None:
        self.deliver = deliver
        self.clock = clock
        self.wake = wake
        self.error_pause = error_pause
        self.first_error_pause = first_error_pause
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="whatsgate:outbox")

    def wake_up(self) -> None:
        """Look at the outbox now (a session connected, an entry was queued elsewhere)."""
        self.wake.set()

    async def stop(self) -> None:
        self._stopping.set()
        self.wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def run(self) -> None:
        first_pause = min(self.first_error_pause, self.error_pause)
        pause = first_pause
        while not self._stopping.is_set():
            self.wake.clear()
            delay: float | None
            try:
                report = await self.deliver(DeliverCommand())
            except Exception:
                log.exception("an outbox pass failed; trying again in %.1f s", pause)
                delay = pause
                pause = min(pause * 2, self.error_pause)
            else:
                pause = first_pause
                due = report.next_due_at
                delay = None if due is None else (due - self.clock.now()).total_seconds()
            if self._stopping.is_set():
                break
            await self._idle(delay)

    async def _idle(self, delay: float | None) -> None:
        """Until woken, or until ``delay`` seconds of the Clock have passed."""
        if self.wake.is_set():
            return
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self.wake.wait())}
        if delay is not None:
            waiters.add(asyncio.ensure_future(self.clock.sleep(max(0.0, delay))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waiters, return_exceptions=True)


async def _sender_of(uow: UnitOfWork, session_id: str, wa_id: str | None) -> Jid | None:
    """Who sent the message a reply, reaction or revoke points at: WhatsApp needs it in
    groups. None for our own messages (the engine knows its own account)."""
    if wa_id is None:
        return None
    target = await uow.messages.get_by_wa_id(session_id, wa_id)
    if target is None or not target.is_inbound:
        return None
    return target.sender
