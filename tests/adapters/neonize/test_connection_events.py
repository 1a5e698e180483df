"""neonize events fed through the C callbacks neonize's Go side calls, into a listener."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.adapters.neonize import protos as p
from tests.adapters.neonize.conftest import Recorder, until
from whatsgate.adapters.neonize import mapping
from whatsgate.adapters.neonize._runtime import npb
from whatsgate.domain.jid import Jid
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    Disconnected,
    EngineEvent,
    IncomingMessage,
    LoggedOut,
    Paired,
    Presence,
    QrCode,
    Receipt,
    Replaced,
)

ALICE = Jid.phone(p.ALICE)


async def test_a_sessions_events_reach_the_listener_in_order(wired: Any) -> None:
    seen: list[str] = []

    async def slow_listener(event: EngineEvent) -> None:
        await asyncio.sleep(0.001)  # a listener that yields must not let events overtake
        seen.append(event.wa_id if isinstance(event, IncomingMessage) else type(event).__name__)

    _, go = wired(slow_listener, ack_timeout=0.05)
    expected: list[str] = []

    def burst() -> None:
        for n in range(15):
            go.fire(mapping.MESSAGE, p.message_event(p.text(f"m{n}"), wa_id=f"ID{n}"))
            go.fire(mapping.RECEIPT, p.receipt([f"ID{n}"], npb.Receipt.READ))
            go.fire(mapping.CHAT_PRESENCE, p.chat_presence(npb.ChatPresence.COMPOSING))
            expected.extend([f"ID{n}", "Receipt", "Presence"])

    await asyncio.to_thread(burst)
    await until(lambda: len(seen) == len(expected))
    assert seen == expected


async def test_two_sessions_do_not_mix(wired: Any) -> None:
    first, second = Recorder(), Recorder()
    _, go1 = wired(first, session_id="one")
    _, go2 = wired(second, session_id="two")
    await asyncio.to_thread(go1.fire, mapping.MESSAGE, p.message_event(p.text("a"), wa_id="A"))
    await asyncio.to_thread(go2.fire, mapping.MESSAGE, p.message_event(p.text("b"), wa_id="B"))
    await until(lambda: bool(first.events and second.events))
    assert [e.wa_id for e in first.of(IncomingMessage)] == ["A"]
    assert [e.wa_id for e in second.of(IncomingMessage)] == ["B"]


@pytest.mark.parametrize(
    ("code", "event"),
    [
        (mapping.MESSAGE, p.message_event(p.text("stored?"))),
        (
            mapping.HISTORY_SYNC,
            p.history(
                [
                    p.conversation(
                        f"{p.ALICE}@s.whatsapp.net",
                        p.web_message("H1", f"{p.ALICE}@s.whatsapp.net", p.text("old")),
                    )
                ]
            ),
        ),
    ],
)
async def test_the_callback_returns_only_after_the_commit(
    wired: Any, code: int, event: Any
) -> None:
    commit = asyncio.Event()
    committed: list[EngineEvent] = []

    async def committing_listener(engine_event: EngineEvent) -> None:
        await commit.wait()  # the use case's transaction
        committed.append(engine_event)

    _, go = wired(committing_listener, ack_timeout=10)
    returned_after: list[list[EngineEvent]] = []

    def go_thread() -> None:
        go.fire(code, event)
        returned_after.append(list(committed))

    thread = threading.Thread(target=go_thread)
    thread.start()
    await asyncio.sleep(0.3)
    assert thread.is_alive(), "the Go callback returned before the listener committed"
    assert committed == []
    commit.set()
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    assert len(returned_after[0]) == 1  # the commit happened before the callback returned


async def test_receipts_do_not_wait(wired: Any) -> None:
    release = asyncio.Event()

    async def never_returns(event: EngineEvent) -> None:
        await release.wait()

    _, go = wired(never_returns, ack_timeout=10)
    thread = threading.Thread(target=go.fire, args=(mapping.RECEIPT, p.receipt(["X"], 4)))
    thread.start()
    await asyncio.to_thread(thread.join, 2)
    assert not thread.is_alive()
    release.set()


async def test_the_wait_for_a_commit_is_bounded(wired: Any) -> None:
    release = asyncio.Event()

    async def never_returns(event: EngineEvent) -> None:
        await release.wait()

    _, go = wired(never_returns, ack_timeout=0.2)
    thread = threading.Thread(target=go.fire, args=(mapping.MESSAGE, p.message_event(p.text("x"))))
    thread.start()
    await asyncio.to_thread(thread.join, 3)
    assert not thread.is_alive()
    release.set()


async def test_a_failing_listener_is_logged_and_later_events_still_arrive(
    wired: Any, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[EngineEvent] = []

    async def flaky(event: EngineEvent) -> None:
        if isinstance(event, IncomingMessage) and event.wa_id == "BAD":
            raise RuntimeError("database is locked")
        received.append(event)

    _, go = wired(flaky, ack_timeout=3)
    with caplog.at_level(logging.ERROR, logger="whatsgate.adapters.neonize.connection"):
        await asyncio.to_thread(go.fire, mapping.MESSAGE, p.message_event(p.text("x"), wa_id="BAD"))
        await asyncio.to_thread(
            go.fire, mapping.MESSAGE, p.message_event(p.text("y"), wa_id="GOOD")
        )
    await until(lambda: len(received) == 1)
    assert [e.wa_id for e in received if isinstance(e, IncomingMessage)] == ["GOOD"]
    failures = [r for r in caplog.records if "listener failed" in r.getMessage()]
    assert len(failures) == 3  # tried again before giving up
    assert "database is locked" in (failures[-1].exc_text or "")


async def test_a_listener_recovering_on_retry_stores_the_message(wired: Any) -> None:
    calls: list[int] = []

    async def locked_once(event: EngineEvent) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")

    _, go = wired(locked_once, ack_timeout=3)
    await asyncio.to_thread(go.fire, mapping.MESSAGE, p.message_event(p.text("x")))
    assert len(calls) == 2  # the callback returned after the successful retry


async def test_the_qr_list_is_shown_one_code_per_rotation(wired: Any) -> None:
    recorder = Recorder()
    _, go = wired(recorder, qr_rotation_scale=0.002)  # 60 s → 0.12 s, 20 s → 0.04 s
    await asyncio.to_thread(go.fire, mapping.QR, p.qr("2@one", "2@two", "2@three"))
    await until(lambda: len(recorder.of(QrCode)) == 1)
    assert recorder.of(QrCode) == [QrCode(code="2@one", valid_for=timedelta(seconds=60))]
    await until(lambda: len(recorder.of(QrCode)) == 3)
    assert recorder.of(QrCode)[1:] == [
        QrCode(code="2@two", valid_for=timedelta(seconds=20)),
        QrCode(code="2@three", valid_for=timedelta(seconds=20)),
    ]


async def test_pairing_stops_the_qr_rotation(wired: Any) -> None:
    recorder = Recorder()
    _, go = wired(recorder, qr_rotation_scale=0.005)  # second code after 0.3 s
    await asyncio.to_thread(go.fire, mapping.QR, p.qr("2@one", "2@two"))
    await until(lambda: len(recorder.of(QrCode)) == 1)
    await asyncio.to_thread(go.fire, mapping.PAIR_STATUS, p.pair_success())
    await asyncio.sleep(0.5)
    assert [e.code for e in recorder.of(QrCode)] == ["2@one"]
    assert recorder.of(Paired) == [Paired(jid=Jid.phone(p.ME), platform="android")]


async def test_qr_codes_from_the_qr_channel_are_shown_once_each(wired: Any) -> None:
    recorder = Recorder()
    _, go = wired(recorder)
    await asyncio.to_thread(go.show_qr, "2@first")
    await asyncio.to_thread(go.show_qr, "2@second")
    # The same codes arriving again as neonize's QR event are not shown twice.
    await asyncio.to_thread(go.fire, mapping.QR, p.qr("2@first", "2@second"))
    await until(lambda: len(recorder.of(QrCode)) == 2)
    await asyncio.sleep(0.05)
    assert recorder.of(QrCode) == [
        QrCode(code="2@first", valid_for=timedelta(seconds=60)),
        QrCode(code="2@second", valid_for=timedelta(seconds=20)),
    ]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("timeout", Disconnected(reason="qr_timeout")),
        ("err-client-outdated", ConnectFailed(reason="client_outdated")),
    ],
)
async def test_the_end_of_the_qr_channel(wired: Any, status: str, expected: EngineEvent) -> None:
    recorder = Recorder()
    _, go = wired(recorder)
    await asyncio.to_thread(go.login_status, status)
    await until(lambda: bool(recorder.events))
    assert recorder.events == [expected]


async def test_lifecycle_events_in_order(wired: Any) -> None:
    recorder = Recorder()
    _, go = wired(recorder)

    def lifecycle() -> None:
        go.fire(mapping.PAIR_STATUS, p.pair_success())
        go.fire(mapping.CONNECTED, p.connected())
        go.fire(mapping.KEEPALIVE_TIMEOUT, p.keepalive_timeout())
        go.fire(mapping.KEEPALIVE_RESTORED, npb.KeepAliveRestored())
        go.fire(mapping.TEMPORARY_BAN, p.temporary_ban())
        go.fire(mapping.STREAM_REPLACED, p.stream_replaced())
        go.fire(mapping.CONNECT_FAILURE, p.connect_failure("CLIENT_OUTDATED"))
        go.fire(mapping.LOGGED_OUT, p.logged_out(on_connect=True))

    await asyncio.to_thread(lifecycle)
    await until(lambda: len(recorder.events) == 8)
    me = Jid.phone(p.ME)
    kinds = [type(e) for e in recorder.events]
    assert kinds == [
        Paired,
        Connected,
        Disconnected,
        Connected,
        Banned,
        Replaced,
        ConnectFailed,
        LoggedOut,
    ]
    assert recorder.events[1] == Connected(jid=me)  # the account learnt from the pairing
    assert recorder.events[2] == Disconnected(reason="keepalive_timeout")
    assert recorder.events[-1] == LoggedOut(on_connect=True, reason="logged_out")


async def test_receipts_and_presence_reach_the_listener(wired: Any) -> None:
    recorder = Recorder()
    _, go = wired(recorder)
    await asyncio.to_thread(go.fire, mapping.RECEIPT, p.receipt(["A1"], npb.Receipt.DELIVERED))
    await asyncio.to_thread(
        go.fire, mapping.CHAT_PRESENCE, p.chat_presence(npb.ChatPresence.COMPOSING)
    )
    await until(lambda: len(recorder.events) == 2)
    [receipt] = recorder.of(Receipt)
    [presence] = recorder.of(Presence)
    assert (receipt.wa_ids, presence.chat) == (("A1",), ALICE)


async def test_events_after_close_are_dropped_at_once(wired: Any) -> None:
    recorder = Recorder()
    connection, go = wired(recorder, ack_timeout=10)
    await connection.disconnect()
    thread = threading.Thread(target=go.fire, args=(mapping.MESSAGE, p.message_event(p.text("x"))))
    thread.start()
    await asyncio.to_thread(thread.join, 2)
    assert not thread.is_alive()
    assert recorder.events == []


async def test_a_never_started_client_refuses_calls_instead_of_crashing(wired: Any) -> None:
    from whatsgate.domain.errors import SessionNotConnected
    from whatsgate.ports.engine import OutgoingMessage

    connection, go = wired(Recorder())
    # Go never registered this client: get_me / the contact store would crash the process.
    await asyncio.to_thread(go.fire, mapping.CONNECTED, p.connected())
    with pytest.raises(SessionNotConnected):
        await connection.contacts()
    with pytest.raises(SessionNotConnected):
        await connection.send(OutgoingMessage(to=ALICE, kind=mapping.MessageKind.TEXT, text="x"))
