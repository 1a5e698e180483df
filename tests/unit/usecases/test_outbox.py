from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Self

import pytest

from whatsgate.adapters.memory.uow import MemoryStore, MemoryUnitOfWork
from whatsgate.domain.errors import FeatureUnavailable, InvalidMessage, WriteConflict
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Direction, Message, MessageKind, MessageStatus
from whatsgate.domain.outbox import OutboxState, RetryPolicy
from whatsgate.domain.pacing import HumanTyping, PacingPolicy
from whatsgate.domain.session import Session
from whatsgate.ports.engine import TypingState
from whatsgate.testing import settle
from whatsgate.usecases._chats import conversation_for
from whatsgate.usecases.outbox import (
    RECORD_PAUSES,
    DeliverCommand,
    DeliverOutbox,
    DeliveryReport,
    OutboxSettings,
    OutboxWorker,
)
from whatsgate.usecases.send import (
    OutgoingMedia,
    ReactionSpec,
    SendMessageCommand,
    SendMessageResult,
)
from whatsgate.usecases.sessions import InitializeCommand, SessionCommand

from .harness import BOB, GROUP, World, _Counted, incoming

TO = "5566999990001"
TO_JID = Jid.phone(TO)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = World()
    yield world
    await world.outbox_worker.stop()


async def send(world: World, session: Session, body: str = "hi") -> SendMessageResult:
    result = await world.send(
        SendMessageCommand(session_id=session.id, to=TO, kind=MessageKind.TEXT, text=body)
    )
    await settle()
    return result


def offsets(world: World, start: datetime) -> list[float]:
    return [(at - start).total_seconds() for _, _, at in world.fake.send_calls]


async def test_a_send_failing_four_times_goes_out_on_the_retry_ladder(world: World) -> None:
    session = await world.connected_session()
    world.fake.fail_sends = 4
    world.outbox_worker.start()
    start = world.clock.now()
    result = await send(world, session)
    await world.clock.advance(600)
    assert offsets(world, start) == [0, 10, 40, 100, 220]
    message = await world.message(result.id)
    assert message.status is MessageStatus.SENT
    assert message.wa_id == world.fake.sent[0].result.wa_id
    entry = await world.outbox_entry(result.id)
    assert (entry.state, entry.attempts, entry.last_error) == (OutboxState.DONE, 5, None)
    attempts = await world.attempts(result.id)
    assert [(a.attempt, a.ok) for a in attempts] == [(n, n == 5) for n in range(1, 6)]
    assert [(a.started_at - start).total_seconds() for a in attempts] == [0, 10, 40, 100, 220]
    assert all(a.error and a.error.startswith("send_failed") for a in attempts[:4])
    assert attempts[4].response == f"wa_id={message.wa_id}"
    assert all(a.request_summary.startswith(f"text to {TO_JID}") for a in attempts)
    [status] = world.events("message.status")
    assert (status.data["status"], status.data["wa_id"]) == ("sent", message.wa_id)


async def test_five_failures_fail_the_message_and_say_why(world: World) -> None:
    session = await world.connected_session()
    world.fake.fail_sends = 99
    world.outbox_worker.start()
    start = world.clock.now()
    result = await send(world, session)
    await world.clock.advance(3600)
    assert offsets(world, start) == [0, 10, 40, 100, 220]  # then no more
    message = await world.message(result.id)
    assert message.status is MessageStatus.FAILED
    assert message.status_error is not None and "send_failed" in message.status_error
    entry = await world.outbox_entry(result.id)
    assert (entry.state, entry.attempts) == (OutboxState.FAILED, 5)
    attempts = await world.attempts(result.id)
    assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5]
    assert not any(a.ok for a in attempts)
    [status] = world.events("message.status")
    assert status.data["status"] == "failed"
    assert status.data["error"] == message.status_error


async def test_the_ladder_and_the_attempts_are_settings() -> None:
    world = World(outbox_settings=OutboxSettings(retry=RetryPolicy(ladder=(5.0,), max_attempts=3)))
    session = await world.connected_session()
    world.fake.fail_sends = 99
    world.outbox_worker.start()
    start = world.clock.now()
    result = await send(world, session)
    await world.clock.advance(100)
    await world.outbox_worker.stop()
    assert offsets(world, start) == [0, 5, 10]
    assert (await world.message(result.id)).status is MessageStatus.FAILED


async def test_content_whatsapp_refuses_fails_at_once(world: World) -> None:
    session = await world.connected_session()
    world.fake.send_errors = [FeatureUnavailable("ffmpeg is not installed")]
    world.outbox_worker.start()
    result = await send(world, session)
    await world.clock.advance(60)
    assert len(world.fake.send_calls) == 1
    message = await world.message(result.id)
    assert message.status is MessageStatus.FAILED
    assert message.status_error == "feature_unavailable: ffmpeg is not installed"


async def test_the_31st_message_in_a_minute_is_held_back_and_none_is_dropped(
    world: World,
) -> None:
    session = await world.connected_session()
    world.outbox_worker.start()
    start = world.clock.now()
    results = [await send(world, session, f"m{i}") for i in range(40)]
    assert [r.throttled for r in results] == [False] * 30 + [True] * 10
    await world.clock.advance(50)
    assert len(world.fake.sent) == 30  # the first 30 went with small gaps
    held = await world.outbox_entry(results[30].id)
    assert held.throttled and held.next_attempt_at >= start + timedelta(seconds=60)
    await world.clock.advance(600)
    assert [s.message.text for s in world.fake.sent] == [f"m{i}" for i in range(40)]
    times = [(s.at - start).total_seconds() for s in world.fake.sent]
    assert times[30] >= 60
    held_gaps = [b - a for a, b in pairwise(times[30:])]
    assert all(a < b for a, b in pairwise(held_gaps))  # later ones with growing gaps
    for i, t in enumerate(times):  # never more than 30 in a rolling minute
        assert sum(1 for u in times[i:] if u < t + 60) <= 30
    statuses = [(await world.message(r.id)).status for r in results]
    assert statuses == [MessageStatus.SENT] * 40
    entries = [await world.outbox_entry(r.id) for r in results]
    assert not any(e.throttled for e in entries)  # the flag goes once the message does


async def test_a_session_sends_in_order_even_when_the_first_needs_a_retry(world: World) -> None:
    session = await world.connected_session()
    world.fake.fail_sends = 1
    world.outbox_worker.start()
    start = world.clock.now()
    first = await send(world, session, "first")
    second = await send(world, session, "second")
    await world.clock.advance(60)
    calls = [(m.text, (at - start).total_seconds()) for _, m, at in world.fake.send_calls]
    assert calls[:2] == [("first", 0), ("first", 10)]
    assert calls[2][0] == "second" and calls[2][1] > 10
    assert (await world.message(first.id)).status is MessageStatus.SENT
    assert (await world.message(second.id)).status is MessageStatus.SENT


async def test_sessions_do_not_wait_for_each_other(world: World) -> None:
    a = await world.connected_session()
    b_session = await world.new_session("support")
    await world.initialize(InitializeCommand(session_id=b_session.id))
    await world.fake.scan(b_session.id, phone="5511988887777")
    b = await world.session(b_session.id)
    world.fake.fail_sends = 1  # a's message fails first and waits 10 s
    world.outbox_worker.start()
    await send(world, a, "from a")
    await send(world, b, "from b")
    sent = [(sid, m.text) for sid, m, _ in world.fake.send_calls]
    assert sent == [(a.id, "from a"), (b.id, "from b")]


async def test_a_rate_limit_pauses_the_session_without_spending_attempts(world: World) -> None:
    session = await world.connected_session()
    start = world.clock.now()
    world.fake.rate_limited_until = start + timedelta(seconds=120)
    world.outbox_worker.start()
    first = await send(world, session, "one")
    second = await send(world, session, "two")
    await world.clock.advance(119)
    assert len(world.fake.send_calls) == 1  # paused: no retry burnt on the limit
    entry = await world.outbox_entry(first.id)
    assert (entry.attempts, entry.throttled) == (0, True)
    assert entry.next_attempt_at == start + timedelta(seconds=120)
    await world.clock.advance(10)
    assert [s.message.text for s in world.fake.sent] == ["one", "two"]
    assert (await world.outbox_entry(first.id)).attempts == 1
    attempts = await world.attempts(first.id)
    assert [a.ok for a in attempts] == [False, True]
    assert attempts[0].error is not None and attempts[0].error.startswith("rate_limited")
    assert (await world.message(second.id)).status is MessageStatus.SENT


async def test_a_session_that_is_not_connected_holds_its_queue(world: World) -> None:
    session = await world.connected_session()
    await world.stop(SessionCommand(session_id=session.id))
    world.outbox_worker.start()
    result = await send(world, session)
    await world.clock.advance(600)
    assert world.fake.send_calls == []
    assert (await world.message(result.id)).status is MessageStatus.QUEUED
    assert (await world.outbox_entry(result.id)).attempts == 0
    await world.initialize(InitializeCommand(session_id=session.id))  # reconnects, no QR
    world.outbox_worker.wake_up()
    await settle()
    assert [s.message.text for s in world.fake.sent] == ["hi"]
    assert (await world.message(result.id)).status is MessageStatus.SENT


async def test_a_session_that_connects_again_sends_its_queue_at_once(world: World) -> None:
    session = await world.connected_session()
    await world.stop(SessionCommand(session_id=session.id))
    world.outbox_worker.start()
    result = await send(world, session)
    await world.clock.advance(1)  # the worker looked: not connected, it waits for a recheck
    assert (await world.message(result.id)).status is MessageStatus.QUEUED
    await world.initialize(InitializeCommand(session_id=session.id))  # reconnects, no QR
    await settle()  # no clock movement: the connect itself woke the worker
    assert [s.message.text for s in world.fake.sent] == ["hi"]
    assert (await world.message(result.id)).status is MessageStatus.SENT


async def test_a_temporary_ban_pauses_the_queue_until_it_expires(world: World) -> None:
    session = await world.connected_session()
    expires = world.clock.now() + timedelta(hours=1)
    await world.fake.ban(session.id, expires)
    result = await send(world, session)
    report = await world.deliver(DeliverCommand())
    assert report.next_due_at == expires
    assert world.fake.send_calls == []
    entry = await world.outbox_entry(result.id)
    assert (entry.state, entry.attempts) == (OutboxState.PENDING, 0)
    assert (await world.message(result.id)).status is MessageStatus.QUEUED


async def test_a_connection_lost_mid_send_holds_without_spending_attempts(world: World) -> None:
    session = await world.connected_session()
    world.fake.connection(session.id).closed = True  # the engine raises SessionNotConnected
    result = await send(world, session)
    report = await world.deliver(DeliverCommand())
    assert report.sent == 0 and report.next_due_at is not None
    entry = await world.outbox_entry(result.id)
    assert (entry.state, entry.attempts) == (OutboxState.PENDING, 0)
    [attempt] = await world.attempts(result.id)
    assert attempt.error is not None and attempt.error.startswith("session_not_connected")


async def test_the_worker_is_woken_by_a_send_not_by_polling(world: World) -> None:
    session = await world.connected_session()
    world.outbox_worker.start()
    await settle()
    assert world.clock.sleepers == 0  # idle on an empty outbox: no timer at all
    await send(world, session)
    assert len(world.fake.sent) == 1  # no clock movement needed
    await world.outbox_worker.stop()
    assert not world.outbox_worker.running
    await send(world, session, "after stop")
    assert len(world.fake.sent) == 1


async def test_media_goes_out_with_its_bytes_and_a_reaction_marks_its_target(
    world: World,
) -> None:
    session = await world.connected_session()
    world.outbox_worker.start()
    image = b"\xff\xd8\xff" + b"i" * 300
    photo = await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=MessageKind.IMAGE,
            media=OutgoingMedia(data=image, mime="image/jpeg", caption="see"),
        )
    )
    await world.clock.advance(5)
    [out] = world.fake.sent
    assert (out.message.media_data, out.message.text) == (image, "see")
    await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=MessageKind.REACTION,
            reaction=ReactionSpec(message_id=photo.id, emoji="❤️"),
        )
    )
    await world.clock.advance(5)
    reaction = world.fake.sent[1].message
    assert (reaction.kind, reaction.target_wa_id) == (MessageKind.REACTION, out.result.wa_id)
    assert (await world.message(photo.id)).reactions == {str(session.jid): "❤️"}


async def test_missing_media_bytes_fail_the_message(world: World) -> None:
    session = await world.connected_session()
    result = await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=TO,
            kind=MessageKind.DOCUMENT,
            media=OutgoingMedia(data=b"%PDF", mime="application/pdf"),
        )
    )
    world.media.blobs.clear()
    await world.deliver(DeliverCommand())
    assert world.fake.send_calls == []
    assert (await world.message(result.id)).status is MessageStatus.FAILED


async def test_human_like_sending_reads_types_then_sends() -> None:
    typing = HumanTyping(enabled=True, per_char=0.1, minimum=1.0, maximum=8.0)
    world = World(outbox_settings=OutboxSettings(typing=typing))
    session = await world.connected_session()
    now = world.clock.now()
    async with world.uow() as uow:  # the contact wrote first
        conversation, _ = await conversation_for(uow, session, TO_JID, now)
        inbound = Message(
            organization_id=session.organization_id,
            session_id=session.id,
            conversation_id=conversation.id,
            wa_id="3EB0INBOUND",
            chat=TO_JID,
            sender=TO_JID,
            direction=Direction.IN,
            kind=MessageKind.TEXT,
            text="hello?",
            timestamp=now,
            status=MessageStatus.RECEIVED,
            created_at=now,
        )
        conversation.register_message(inbound, now)
        await uow.messages.save(inbound)
        await uow.conversations.save(conversation)
        await uow.commit()
    world.outbox_worker.start()
    await send(world, session, "x" * 50)  # about 5 s of typing
    connection = world.fake.connection(session.id)
    assert connection.read_marks == [(TO_JID, ["3EB0INBOUND"])]
    assert connection.typing == [(TO_JID, TypingState.COMPOSING)]
    assert world.fake.sent == []
    await world.clock.advance(10)
    [sent] = world.fake.sent
    assert 4.0 <= (sent.at - now).total_seconds() <= 6.0
    await world.outbox_worker.stop()


async def test_an_outbox_pass_reports_what_it_did(world: World) -> None:
    session = await world.connected_session()
    world.fake.send_errors = [InvalidMessage("bad")]
    await send(world, session, "a")
    await send(world, session, "b")
    report = await world.deliver(DeliverCommand())
    assert (report.sent, report.failed) == (0, 1)
    # "b" now waits for the small pacing gap after the refused attempt.
    assert report.next_due_at is not None and report.next_due_at > world.clock.now()
    await world.clock.advance(2)
    report = await world.deliver(DeliverCommand(session_id=session.id))
    assert (report.sent, report.next_due_at) == (1, None)


async def test_a_failing_pass_is_logged_and_tried_again_later(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    session = await world.connected_session()
    passes: list[str] = []

    class BrokenOnce(DeliverOutbox):
        async def __call__(self, command: DeliverCommand) -> DeliveryReport:
            passes.append("pass")
            if len(passes) == 1:
                raise RuntimeError("database went away")
            return await super().__call__(command)

    d = world.deliver
    broken = BrokenOnce(d.uow, d.connections, d.clock, d.media, d.pacer, d.settings, d.rng)
    worker = OutboxWorker(broken, world.clock, world.wake, error_pause=5.0)
    await world.send(
        SendMessageCommand(session_id=session.id, to=TO, kind=MessageKind.TEXT, text="hi")
    )
    worker.start()
    await settle()
    assert passes == ["pass"] and world.fake.sent == []
    assert "an outbox pass failed" in caplog.text
    await world.clock.advance(5)
    assert len(passes) == 2 and len(world.fake.sent) == 1
    await worker.stop()


async def test_failing_passes_are_tried_again_soon_then_less_and_less_often(
    world: World,
) -> None:
    failing = [4]
    passes: list[datetime] = []

    class Flaky(DeliverOutbox):
        async def __call__(self, command: DeliverCommand) -> DeliveryReport:
            passes.append(world.clock.now())
            if failing[0]:
                failing[0] -= 1
                raise RuntimeError("database is locked")
            return await super().__call__(command)

    d = world.deliver
    flaky = Flaky(d.uow, d.connections, d.clock, d.media, d.pacer, d.settings, d.rng)
    worker = OutboxWorker(flaky, world.clock, world.wake, error_pause=0.3, first_error_pause=0.1)
    worker.start()
    await world.clock.advance(60)
    # Four failures, then a good pass; the outbox is empty, so the worker waits to be woken.
    assert [(b - a).total_seconds() for a, b in pairwise(passes)] == [0.1, 0.2, 0.3, 0.3]
    failing[0] = 2
    del passes[:]
    worker.wake_up()
    await world.clock.advance(60)
    # The good pass started the back-off again.
    assert [(b - a).total_seconds() for a, b in pairwise(passes)] == [0.1, 0.2]
    await worker.stop()


async def test_replies_and_reactions_in_a_group_name_the_member_they_answer(
    world: World,
) -> None:
    session = await world.connected_session()
    world.outbox_worker.start()
    received = await world.receive(session.id, incoming("G1", chat=GROUP, sender=BOB))
    assert received.message is not None
    await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=GROUP,
            kind=MessageKind.TEXT,
            text="on it",
            reply_to=received.message.id,
        )
    )
    await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=GROUP,
            kind=MessageKind.REACTION,
            reaction=ReactionSpec(message_id=received.message.id, emoji="👍"),
        )
    )
    await world.clock.advance(10)
    reply, reaction = (s.message for s in world.fake.sent)
    # WhatsApp needs the sender of the quoted or reacted message in a group.
    assert (reply.quoted_wa_id, reply.quoted_sender) == ("G1", Jid.parse(BOB))
    assert (reaction.target_wa_id, reaction.target_sender) == ("G1", Jid.parse(BOB))


UNPACED = PacingPolicy(per_window=1_000_000, gap_min=0.0, gap_max=0.0)


class _CountingOutboxUnitOfWork(MemoryUnitOfWork):
    """Counts the look-ups of sessions, messages and outbox entries (each a round trip)."""

    def __init__(self, store: MemoryStore, calls: Counter[str]) -> None:
        self.calls = calls
        super().__init__(store)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.sessions = _Counted(self.sessions, "sessions", self.calls)
        self.messages = _Counted(self.messages, "messages", self.calls)
        self.outbox = _Counted(self.outbox, "outbox", self.calls)
        return self

    async def commit(self) -> None:
        self.calls["commit"] += 1
        await asyncio.sleep(0)  # a database round trip: other sessions go on meanwhile
        await super().commit()


def counted_deliver(world: World, calls: Counter[str]) -> DeliverOutbox:
    return deliver_on(world, lambda: _CountingOutboxUnitOfWork(world.store, calls))


def deliver_on(world: World, uow: Callable[[], MemoryUnitOfWork]) -> DeliverOutbox:
    """The world's ``DeliverOutbox``, its units of work from ``uow``."""
    return DeliverOutbox(
        uow,
        world.connections,
        world.clock,
        world.media,
        world.pacer,
        world.outbox_settings,
        random.Random(13),
    )


async def test_unpaced_a_queue_goes_in_batches_in_order_each_read_at_once() -> None:
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED, batch_size=4))
    session = await world.connected_session()
    queued = [await send(world, session, f"m{n}") for n in range(6)]
    calls: Counter[str] = Counter()
    report = await counted_deliver(world, calls)(DeliverCommand())
    assert report == DeliveryReport(sent=6, next_due_at=None)
    assert [m.text for _, m, _ in world.fake.send_calls] == [f"m{n}" for n in range(6)]
    for result in queued:
        message = await world.message(result.id)
        assert message.status is MessageStatus.SENT and message.wa_id is not None
        assert [a.ok for a in await world.attempts(result.id)] == [True]
        assert (await world.outbox_entry(result.id)).state is OutboxState.DONE
    assert [e.data["status"] for e in world.events("message.status")] == ["sent"] * 6
    # Two batches (4, then 2): per batch one session read, one message read (recording uses
    # the messages the claim read), one read of the entries to record; never one per message.
    assert calls == {
        "sessions.get": 2,
        "messages.get_many": 2,
        "outbox.get_many": 2,
        "commit": 2,
    }


async def test_unpaced_a_failure_stops_the_batch_and_the_rest_waits_for_its_retry() -> None:
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED))
    session = await world.connected_session()
    world.fake.fail_sends = 1
    world.outbox_worker.start()
    start = world.clock.now()
    for n in range(3):
        await world.send(
            SendMessageCommand(session_id=session.id, to=TO, kind=MessageKind.TEXT, text=f"m{n}")
        )
    await settle()
    assert [m.text for _, m, _ in world.fake.send_calls] == ["m0"]  # failed: m1 and m2 wait
    await world.clock.advance(10)
    calls = [(m.text, (at - start).total_seconds()) for _, m, at in world.fake.send_calls]
    assert calls == [("m0", 0), ("m0", 10), ("m1", 10), ("m2", 10)]


async def test_a_session_found_offline_is_not_read_again_on_every_wake(world: World) -> None:
    session = await world.connected_session()
    await world.stop(SessionCommand(session_id=session.id))
    calls: Counter[str] = Counter()
    deliver = counted_deliver(world, calls)
    await send(world, session, "one")
    recheck = world.clock.now() + timedelta(seconds=world.outbox_settings.offline_recheck)
    assert (await deliver(DeliverCommand())).next_due_at == recheck
    await send(world, session, "two")  # a POST to the offline session wakes the worker
    assert (await deliver(DeliverCommand())).next_due_at == recheck
    assert calls["sessions.get"] == 1  # the second pass only read the queue's heads
    await world.clock.advance(world.outbox_settings.offline_recheck)
    await deliver(DeliverCommand())
    assert calls["sessions.get"] == 2  # its recheck came: looked at again
    await world.initialize(InitializeCommand(session_id=session.id))  # reconnects, no QR
    report = await deliver(DeliverCommand())  # running again: sent at once (then paced)
    assert report.sent == 1 and [m.text for _, m, _ in world.fake.send_calls] == ["one"]


async def test_batches_of_sessions_sending_at_once_are_written_together() -> None:
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED))
    sessions = [
        await world.connected_session(name, phone=f"55119000000{n}")
        for n, name in enumerate(("a", "b", "c"))
    ]
    for session in sessions:
        for n in range(2):
            await send(world, session, f"{session.name} {n}")
    calls: Counter[str] = Counter()
    report = await counted_deliver(world, calls)(DeliverCommand())
    assert report.sent == 6
    sent = {(sid, m.text) for sid, m, _ in world.fake.send_calls}
    assert sent == {(s.id, f"{s.name} {n}") for s in sessions for n in range(2)}
    # a's batch is written alone; b's and c's, sent while it was, in the next transaction.
    assert calls["commit"] == 2
    assert [e.data["status"] for e in world.events("message.status")] == ["sent"] * 6


async def test_a_pass_leaves_a_session_being_drained_to_the_pass_draining_it() -> None:
    """A second pass does not wait for a session the first is stuck in (a slow send): it
    would hold the worker's second pass, and another session's message would wait for the
    slow send too. The first pass, told so, looks at its session once more before it ends:
    the message that woke the second is not left behind."""
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED))  # a's second goes at once
    a = await world.connected_session("a", phone="5511900000001")
    b = await world.connected_session("b", phone="5511900000002")
    gate = asyncio.Event()

    class SlowForA(DeliverOutbox):
        async def _send(self, session: Session, connection: Any, job: Any) -> Any:
            if session.id == a.id and job.message.text == "slow":
                await gate.wait()  # WhatsApp taking its time to answer
            return await super()._send(session, connection, job)

    d = world.deliver
    slow = SlowForA(d.uow, d.connections, d.clock, d.media, d.pacer, d.settings, d.rng)
    worker = OutboxWorker(slow, world.clock, world.wake)
    worker.start()
    await settle()  # the pass the sessions' connecting asked for ends: nothing was queued
    await send(world, a, "slow")  # the first pass is stuck in it
    await send(world, a, "again")  # a second pass finds a being drained, and leaves it
    await send(world, b, "quick")  # a third: b's message does not wait for a's send
    assert [s.message.text for s in world.fake.sent] == ["quick"]
    gate.set()
    await settle()
    assert [s.message.text for s in world.fake.sent] == ["quick", "slow", "again"]
    await worker.stop()


async def test_a_message_queued_during_a_pass_does_not_wait_for_it_to_end(world: World) -> None:
    a = await world.connected_session("a", phone="5511900000001")
    b = await world.connected_session("b", phone="5511900000002")
    gate = asyncio.Event()

    class SlowForA(DeliverOutbox):
        async def _send(self, session: Session, connection: Any, job: Any) -> Any:
            if session.id == a.id:
                await gate.wait()  # WhatsApp taking its time to answer a's send
            return await super()._send(session, connection, job)

    d = world.deliver
    slow = SlowForA(d.uow, d.connections, d.clock, d.media, d.pacer, d.settings, d.rng)
    worker = OutboxWorker(slow, world.clock, world.wake)
    worker.start()
    await send(world, a, "slow")
    await send(world, b, "quick")  # woke the worker while a's pass still runs
    assert [s.message.text for s in world.fake.sent] == ["quick"]
    gate.set()
    await settle()
    assert [s.message.text for s in world.fake.sent] == ["quick", "slow"]
    await worker.stop()
    assert not worker.running


async def test_unpaced_two_reactions_to_one_message_in_a_batch_show_the_last() -> None:
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED))
    session = await world.connected_session()
    target = await send(world, session, "lunch?")
    await world.deliver(DeliverCommand())
    for emoji in ("❤️", "👍"):
        await world.send(
            SendMessageCommand(
                session_id=session.id,
                to=TO,
                kind=MessageKind.REACTION,
                reaction=ReactionSpec(message_id=target.id, emoji=emoji),
            )
        )
    report = await world.deliver(DeliverCommand())
    assert report.sent == 2
    assert (await world.message(target.id)).reactions == {str(session.jid): "👍"}


class _RecordsFail(MemoryUnitOfWork):
    """The commits that write down sends (they store ``message.status`` events) raise the
    next of ``failures`` while any is left; the claims' commits go through."""

    def __init__(self, store: MemoryStore, failures: list[Exception]) -> None:
        self.failures = failures
        super().__init__(store)

    async def commit(self) -> None:
        if self.failures and self.events.staged:
            raise self.failures.pop(0)
        await super().commit()


def records_failing(world: World, failures: list[Exception]) -> DeliverOutbox:
    return deliver_on(world, lambda: _RecordsFail(world.store, failures))


async def test_a_record_that_fails_is_written_again_and_nothing_goes_out_twice() -> None:
    """The sends went out; writing them down failed twice (a conflict, then the database
    busy): the record is written again after a pause, from what the claim read, so each
    message is sent once, has one attempt and one ``sent`` event, and the pass counts each
    once."""
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED))
    session = await world.connected_session()
    queued = [await send(world, session, f"m{n}") for n in range(3)]
    failures: list[Exception] = [
        WriteConflict("Another unit of work held the rows."),
        RuntimeError("database is locked"),
    ]
    deliver = records_failing(world, failures)
    passing = asyncio.ensure_future(deliver(DeliverCommand()))
    await settle()
    assert not passing.done() and len(failures) == 1  # the first pause (0.1 s)
    await world.clock.advance(0.1)
    assert not passing.done() and failures == []  # the second (0.5 s)
    await world.clock.advance(0.5)
    report = await asyncio.wait_for(passing, 1)
    assert report == DeliveryReport(sent=3, next_due_at=None)
    assert [m.text for _, m, _ in world.fake.send_calls] == ["m0", "m1", "m2"]
    for result in queued:
        message = await world.message(result.id)
        assert message.status is MessageStatus.SENT and message.wa_id is not None
        assert [a.ok for a in await world.attempts(result.id)] == [True]
        assert (await world.outbox_entry(result.id)).state is OutboxState.DONE
    assert [e.data["status"] for e in world.events("message.status")] == ["sent"] * 3


async def test_a_record_that_keeps_failing_fails_the_pass_and_the_sends_go_again() -> None:
    """Past the last pause the pass fails, its entries still pending: the next pass sends
    them again (at least once, never lost)."""
    world = World(outbox_settings=OutboxSettings(pacing=UNPACED))
    session = await world.connected_session()
    queued = await send(world, session, "m0")
    failures: list[Exception] = [RuntimeError("database is gone")] * (len(RECORD_PAUSES) + 1)
    deliver = records_failing(world, failures)
    passing = asyncio.ensure_future(deliver(DeliverCommand()))
    for pause in RECORD_PAUSES:
        await settle()
        await world.clock.advance(pause)
    with pytest.raises(RuntimeError, match="database is gone"):
        await asyncio.wait_for(passing, 1)
    assert (await world.outbox_entry(queued.id)).state is OutboxState.PENDING
    report = await deliver(DeliverCommand())
    assert report.sent == 1 and len(world.fake.send_calls) == 2
    assert (await world.outbox_entry(queued.id)).state is OutboxState.DONE
