"""Delivering the outbox: DeliverOutbox sends what is due, OutboxWorker keeps it running."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
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
from whatsgate.usecases._groups import fail_waiter
from whatsgate.usecases.connections import SessionConnections

log = logging.getLogger("whatsgate.outbox")

#: Errors no retry can mend: the content itself is refused.
_PERMANENT = (InvalidInput, FeatureUnavailable)

#: The pauses (seconds) before writing down a batch's sends again when it failed; after the
#: last, the batch fails and its sends go out again on the next pass (never lost).
RECORD_PAUSES = (0.1, 0.5, 2.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pacing: PacingPolicy = field(default_factory=PacingPolicy)
    typing: HumanTyping = field(default_factory=HumanTyping)
    #: How often a session that is not connected is looked at again (its queue waits).
    offline_recheck: float = 15.0
    #: The pause of a session's outbox after a rate limit that does not say until when.
    rate_limit_pause: float = 300.0
    #: At most this many entries of a session go one after the other before their results
    #: are recorded, together, in one transaction. The price: a crash between a send and its
    #: record sends it again on restart, up to this many per session (never fewer than
    #: once: nothing is lost). Pacing allows one send at a time anyway; this counts when it
    #: is off.
    batch_size: int = 20

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InvalidInput("The outbox batch size is at least 1.")


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

    def add(self, other: _Tally) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.held += other.held


@dataclass(slots=True)
class _Job:
    """An entry to send, with its message and what goes to the engine; or why it cannot go."""

    entry: OutboxEntry
    message: Message | None
    outgoing: OutgoingMessage | None
    problem: str | None = None


@dataclass(slots=True, kw_only=True)
class _Outcome:
    """What became of a job: sent, failed, held back by pacing, or not sendable at all."""

    job: _Job
    at: datetime
    started: datetime | None = None
    result: SendResult | None = None
    error: BaseException | None = None
    hold_until: datetime | None = None

    @property
    def latency_ms(self) -> float:
        return 0.0 if self.started is None else (self.at - self.started).total_seconds() * 1000


@dataclass(slots=True)
class _Book:
    """The writes of one batch, made together: attempts, entries, messages, events."""

    attempts: list[SendAttempt] = field(default_factory=list)
    entries: list[OutboxEntry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    events: list[MessageStatusChanged] = field(default_factory=list)
    #: Reactions sent, their targets to show them: (session id, our jid, target, emoji).
    reactions: list[tuple[str, Jid, str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Batch:
    """A session's batch, sent, waiting for its transaction."""

    session: Session
    outcomes: list[_Outcome]
    tally: _Tally
    #: When the session may go on (None: at once), once written.
    done: asyncio.Future[datetime | None]


@dataclass(frozen=True, slots=True)
class _Stop:
    """Nothing to send now: whether the session is done for now, and when to look again."""

    done: bool
    look_again: datetime | None


#: What a claim found to send; whether it is all that was pending (and due).
_Claimed = tuple[Session, EngineConnection, list[_Job], bool]


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
    - Batches: a session claims its first due entries (at most ``batch_size``), sends them one
      after the other (stopping at the first that fails or that pacing holds back) and writes
      down their results together; sessions whose batches end while another is being written
      share the next transaction. A send is recorded after it went: a crash in between sends
      it again on restart (at least once, never lost), up to a batch per session. A record
      that fails is written again after each of ``RECORD_PAUSES`` before the pass gives up
      (and the next pass sends the batch again).
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
        #: Sessions a pass is draining (one pass per session: its sends go in order).
        self._draining: set[str] = set()
        #: Sessions a pass found being drained by another: that one looks again before it ends.
        self._look_again: set[str] = set()
        #: Sessions found not connected, and when to look at them again.
        self._offline: dict[str, datetime] = {}
        #: Batches sent and waiting to be written; whether a transaction is writing some.
        self._unwritten: list[_Batch] = []
        self._writing = False

    async def __call__(self, command: DeliverCommand) -> DeliveryReport:
        async with self.uow() as uow:
            heads = await uow.outbox.heads(command.session_id)
        tally = _Tally()
        now = self.clock.now()
        nexts: list[datetime | None] = []
        drains = []
        for head in heads:
            sid = head.session_id
            recheck = self._offline.get(sid)
            if head.next_attempt_at > now:
                nexts.append(head.next_attempt_at)  # not due: no need to look closer
            elif recheck is not None and recheck > now and not self.connections.is_open(sid):
                # Found offline, and still not running in this process: nothing to read until
                # it runs again (connecting wakes the worker) or its recheck comes.
                nexts.append(recheck)
            else:
                drains.append(self._drain(sid, tally))
        nexts += await asyncio.gather(*drains)
        return DeliveryReport(
            sent=tally.sent,
            retried=tally.retried,
            failed=tally.failed,
            held=tally.held,
            next_due_at=min((n for n in nexts if n is not None), default=None),
        )

    async def _drain(self, session_id: str, tally: _Tally) -> datetime | None:
        """Send the session's due entries in order; returns when to look at it again.

        A session another pass is draining is left to that pass, which is told to look once
        more before it lets the session go (what woke this pass is not missed). Waiting for
        it instead held one of the worker's two passes for as long as that session's send
        took (a minute, to a network that does not answer), and a third wake, another
        session's new message, found no pass free to go."""
        if session_id in self._draining:
            self._look_again.add(session_id)
            return None
        self._draining.add(session_id)
        try:
            while True:
                self._look_again.discard(session_id)
                done, look_again = await self._next_batch(session_id, tally)
                if done and session_id not in self._look_again:
                    return look_again
        finally:
            self._draining.discard(session_id)

    async def _next_batch(self, session_id: str, tally: _Tally) -> tuple[bool, datetime | None]:
        """Send the session's next due entries (at most ``batch_size``) one after the other,
        then record them in one transaction: (done for now, when to look again)."""
        claimed = await self._claim(session_id)
        if isinstance(claimed, _Stop):
            return claimed.done, claimed.look_again
        session, connection, jobs, claimed_all = claimed
        outcomes: list[_Outcome] = []
        look_again: datetime | None = None
        try:
            for job in jobs:
                if job.problem is not None:
                    outcomes.append(_Outcome(job=job, at=self.clock.now()))
                    continue
                now = self.clock.now()
                slot = self.pacer.slot(session_id, now)
                if slot.at > now:
                    entry = job.entry
                    if slot.throttled and not (
                        entry.throttled and entry.next_attempt_at == slot.at
                    ):
                        outcomes.append(_Outcome(job=job, hold_until=slot.at, at=now))
                    look_again = slot.at
                    break
                outcome = await self._send(session, connection, job)
                outcomes.append(outcome)
                if outcome.result is None:
                    break  # the session's next entry waits for this one
        finally:
            # Whatever went out is written down, even if something failed on the way.
            look_again = await self._record(session, outcomes, tally) or look_again
        if look_again is None:
            if claimed_all and len(outcomes) == len(jobs):
                # Everything pending at the claim went: nothing to look at now. An entry queued
                # since then woke the worker (SendMessage sets ``wake`` after its commit).
                return True, None
            return False, None  # go on with the session's next entries
        if look_again > self.clock.now():
            return True, look_again
        return False, None

    async def _claim(self, session_id: str) -> _Stop | _Claimed:
        """The session's leading due entries with what sending them needs, in one short
        read: its first pending entries, the session, the messages (and their media)."""
        now = self.clock.now()
        async with self.uow() as uow:
            entries = await uow.outbox.fronts(session_id, limit=self.settings.batch_size)
            if not entries:
                return _Stop(True, None)
            head = entries[0]
            if head.next_attempt_at > now:
                return _Stop(True, head.next_attempt_at)
            session = await uow.sessions.get(session_id)
            connection = self._connection(session)
            if session is None or connection is None:
                recheck = now + timedelta(seconds=self.settings.offline_recheck)
                if session is not None and session.banned_until is not None:
                    recheck = max(recheck, session.banned_until)  # no use asking before
                self._offline[session_id] = recheck
                return _Stop(True, recheck)
            self._offline.pop(session_id, None)
            due = list(itertools.takewhile(lambda e: e.next_attempt_at <= now, entries))
            messages = {m.id: m for m in await uow.messages.get_many([e.message_id for e in due])}
            jobs = []
            for entry in due:
                message = messages.get(entry.message_id)
                if message is None:
                    jobs.append(_Job(entry, None, None, problem="the message no longer exists"))
                    continue
                outgoing = await self._outgoing(uow, message)
                if outgoing is None:
                    problem = "the media bytes are no longer stored"
                    jobs.append(_Job(entry, message, None, problem=problem))
                    continue
                jobs.append(_Job(entry, message, outgoing))
        claimed_all = len(entries) < self.settings.batch_size and len(due) == len(entries)
        return session, connection, jobs, claimed_all

    async def _send(self, session: Session, connection: EngineConnection, job: _Job) -> _Outcome:
        assert job.message is not None and job.outgoing is not None
        if self.settings.typing.enabled and job.entry.attempts == 0:
            await self._act_human(connection, job.message)
        started = self.clock.now()
        result: SendResult | None = None
        error: BaseException | None = None
        try:
            result = await connection.send(job.outgoing)
        except Exception as exc:
            error = exc
        finished = self.clock.now()
        if not isinstance(error, SessionNotConnected):
            self.pacer.record(session.id, started)
        return _Outcome(job=job, started=started, at=finished, result=result, error=error)

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

    async def _record(
        self, session: Session, outcomes: list[_Outcome], tally: _Tally
    ) -> datetime | None:
        """Write down what became of a batch (entries, attempts, messages, events); returns
        when the session may go on, if it must wait. Batches of sessions that finish while
        another is being written are written together, in the next transaction (a group
        commit): one commit for many sessions when they are busy, no wait when they are not."""
        if not outcomes:
            return None
        batch = _Batch(session, outcomes, tally, asyncio.get_running_loop().create_future())
        self._unwritten.append(batch)
        if not self._writing:
            self._writing = True
            group: list[_Batch] = []
            try:
                while self._unwritten:
                    group, self._unwritten = self._unwritten, []
                    try:
                        await self._write_again_if_failed(group)
                    except Exception as exc:
                        _fail(group, exc)
            finally:
                self._writing = False
                # Interrupted (cancelled): no batch may wait for a writer that is gone.
                _fail([*group, *self._unwritten], RuntimeError("the outbox writer stopped"))
                self._unwritten = []
        look_again = await batch.done
        for outcome in outcomes:
            if outcome.result is not None:
                log.info(
                    "session %s: message %s sent as %s (%.0f ms)",
                    session.id,
                    outcome.job.entry.message_id,
                    outcome.result.wa_id,
                    outcome.latency_ms,
                    extra={"session_id": session.id, "message_id": outcome.job.entry.message_id},
                )
        return look_again

    async def _write_again_if_failed(self, batches: list[_Batch]) -> None:
        """``_write``, again after a pause when it fails (the database busy or unreachable
        for a moment, a ``WriteConflict``): the sends went out, and a record that is not
        written sends them again on the next pass. Each run starts from what the claim read;
        entries a run did write (a commit that failed after it landed) are not pending
        any more, and the next run leaves them."""
        for pause in RECORD_PAUSES:
            try:
                await self._write(batches)
                return
            except Exception as exc:
                log.warning(
                    "recording %d sends failed (%s); again in %.1f s",
                    sum(len(b.outcomes) for b in batches),
                    _describe(exc),
                    pause,
                )
            await self.clock.sleep(pause)
        await self._write(batches)

    async def _write(self, batches: list[_Batch]) -> None:
        """One transaction for the batches of one or more sessions."""
        async with self.uow() as uow:
            # The reactions' targets are read to be written over: no receipt may land between.
            await uow.begin_write()
            outcomes = [o for b in batches for o in b.outcomes]
            ids = [o.job.entry.id for o in outcomes]
            currents = {e.id: e for e in await uow.outbox.get_many(ids)}
            # The messages as the claim read them: a queued message has no WhatsApp id yet, so
            # nothing else (receipts, edits, reactions, imports) can reach it meanwhile, and a
            # message only goes with its session, whose deletion the entries' re-read catches.
            # Copies: a run that fails leaves the claim's reads as they were for the next.
            stored = {o.job.message.id: copy.copy(o.job.message) for o in outcomes if o.job.message}
            book = _Book()
            tallies = [_Tally() for _ in batches]
            answers = [
                self._settle_batch(b, t, currents, stored, book)
                for b, t in zip(batches, tallies, strict=True)
            ]
            targets = await _show_reactions(uow, book)
            await uow.outbox.add_attempts(book.attempts)
            await uow.outbox.save_many(book.entries)
            await uow.messages.save_many(
                list({m.id: m for m in [*book.messages, *targets]}.values())
            )
            uow.events.add(*book.events)
            await uow.commit()
        for batch, tally, look_again in zip(batches, tallies, answers, strict=True):
            batch.tally.add(tally)
            batch.done.set_result(look_again)

    def _settle_batch(
        self,
        batch: _Batch,
        tally: _Tally,
        currents: dict[str, OutboxEntry],
        stored: dict[str, Message],
        book: _Book,
    ) -> datetime | None:
        session = batch.session
        look_again: datetime | None = None
        for outcome in batch.outcomes:
            current = currents.get(outcome.job.entry.id)
            if current is None or not current.is_pending:
                continue  # deleted or settled meanwhile
            message = stored.get(current.message_id)
            if outcome.job.problem is not None:
                _give_up(current, message, outcome.job.problem, outcome.at, book, tally)
            elif message is None:
                continue  # deleted meanwhile
            elif outcome.hold_until is not None:
                current.hold(outcome.hold_until, outcome.at, throttled=True)
                book.entries.append(current)
                tally.held += 1
                log.info(
                    "session %s: message %s held back by pacing until %s",
                    session.id,
                    current.message_id,
                    outcome.hold_until.isoformat(),
                    extra={"session_id": session.id, "message_id": current.message_id},
                )
            else:
                look_again = self._settle(session, current, message, outcome, book, tally)
        return look_again

    def _settle(
        self,
        session: Session,
        current: OutboxEntry,
        stored: Message,
        outcome: _Outcome,
        book: _Book,
        tally: _Tally,
    ) -> datetime | None:
        """Apply one attempt's result to its entry and message; when to look again if the
        session must wait."""
        assert outcome.job.outgoing is not None and outcome.started is not None
        result, error, finished = outcome.result, outcome.error, outcome.at
        book.attempts.append(
            SendAttempt(
                organization_id=current.organization_id,
                session_id=current.session_id,
                outbox_id=current.id,
                message_id=current.message_id,
                attempt=current.attempts + 1,
                started_at=outcome.started,
                latency_ms=outcome.latency_ms,
                request_summary=outcome.job.outgoing.summary(),
                ok=result is not None,
                response=f"wa_id={result.wa_id}" if result is not None else None,
                error=_describe(error) if error is not None else None,
            )
        )
        book.entries.append(current)
        book.messages.append(stored)
        look_again: datetime | None = None
        if result is not None:
            current.succeed(finished)
            stored.wa_id = result.wa_id
            if stored.advance_status(MessageStatus.SENT):
                book.events.append(MessageStatusChanged.of(stored, finished))
            if stored.kind is MessageKind.REACTION and stored.target_wa_id and session.jid:
                book.reactions.append(
                    (session.id, session.jid, stored.target_wa_id, stored.text or "")
                )
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
                book.events.append(MessageStatusChanged.of(stored, finished))
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
        return look_again


async def _show_reactions(uow: UnitOfWork, book: _Book) -> list[Message]:
    """Our reactions went out: the messages reacted to show them (of two to one message,
    the last one sent). The targets are read (on PostgreSQL, locked) in order, as receipts
    read theirs. Returns them, to be saved."""
    targets: dict[tuple[str, str], Message | None] = {}
    for session_id, jid, wa_id, emoji in sorted(book.reactions, key=lambda r: (r[0], r[2])):
        if (session_id, wa_id) not in targets:
            targets[session_id, wa_id] = await uow.messages.get_by_wa_id(session_id, wa_id)
        target = targets[session_id, wa_id]
        if target is not None:
            target.apply_reaction(jid, emoji)
    return [t for t in targets.values() if t is not None]


def _fail(batches: list[_Batch], error: BaseException) -> None:
    for batch in batches:
        fail_waiter(batch.done, error)


def _give_up(
    entry: OutboxEntry,
    message: Message | None,
    error: str,
    at: datetime,
    book: _Book,
    tally: _Tally,
) -> None:
    """An entry that cannot be sent at all (its message or its media is gone): failed now."""
    entry.give_up(error, at)
    book.entries.append(entry)
    if message is not None:
        message.advance_status(MessageStatus.FAILED, error=error)
        book.messages.append(message)
        book.events.append(MessageStatusChanged.of(message, at))
        tally.failed += 1


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
    - Woken while a pass runs, it starts another at once (two at most): a message queued
      meanwhile does not wait for the sends and writes of other sessions to end. A pass
      leaves a session another pass is draining to that pass (``DeliverOutbox._drain``).
    - ``stop`` lets the passes in progress finish (a send is never cut in half), then returns.
    """

    #: Passes running at once, at most.
    MAX_PASSES = 2

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
        passes: set[asyncio.Task[DeliveryReport]] = set()
        #: When to look again, from the passes ended since the worker last went idle.
        dues: list[datetime] = []
        start = True
        while True:
            if start and not self._stopping.is_set():
                self.wake.clear()
                passes.add(asyncio.create_task(self.deliver(DeliverCommand())))
            if not passes:
                if self._stopping.is_set():
                    break
                due = min(dues, default=None)
                dues.clear()
                await self._idle(None if due is None else (due - self.clock.now()).total_seconds())
                start = True
                continue
            # A wake while a pass runs starts one more at once (one pass at a time drains a
            # session, so its sends stay in order): a message queued meanwhile does not wait for
            # the pass to end. At most two at a time; a later wake waits for one of them.
            room = len(passes) < self.MAX_PASSES and not self._stopping.is_set()
            woken = asyncio.ensure_future(self.wake.wait()) if room else None
            try:
                await asyncio.wait(
                    {*passes, *([woken] if woken else [])}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                if woken is not None:
                    woken.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await woken
            for ended in [p for p in passes if p.done()]:
                passes.discard(ended)
                try:
                    report = ended.result()
                except Exception:
                    log.exception("an outbox pass failed; trying again in %.1f s", pause)
                    dues.append(self.clock.now() + timedelta(seconds=pause))
                    pause = min(pause * 2, self.error_pause)
                else:
                    pause = first_pause
                    if report.next_due_at is not None:
                        dues.append(report.next_due_at)
            start = self.wake.is_set() and len(passes) < self.MAX_PASSES

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
