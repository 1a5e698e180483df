from __future__ import annotations

from datetime import timedelta

import pytest

from whatsgate.domain.errors import InvalidInput, SendFailed, SessionNotConnected, SessionNotRunning
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind
from whatsgate.ports.engine import (
    Banned,
    ConnectFailed,
    Disconnected,
    LoggedOut,
    OutgoingMessage,
    Replaced,
)
from whatsgate.testing import FakeClock

from .conftest import Sandbox

HI = OutgoingMessage(to=Jid.phone("5511987651001"), kind=MessageKind.TEXT, text="Hi")


async def test_the_next_n_sends_fail_then_sending_works_again(sandbox: Sandbox) -> None:
    connection, _ = await sandbox.paired()
    await sandbox.engine.faults("s1", fail_sends=2)
    for _ in range(2):
        with pytest.raises(SendFailed):
            await connection.send(HI)
    assert (await connection.send(HI)).wa_id.startswith("3EB0")
    assert len(sandbox.engine.outbound["s1"]) == 1


async def test_a_dropped_connection_reports_network_and_a_new_open_reconnects(
    sandbox: Sandbox,
) -> None:
    connection, recorder = await sandbox.paired()
    await sandbox.engine.faults("s1", disconnect=True)
    assert recorder.events == [Disconnected(reason="network")]
    assert not connection.is_open
    with pytest.raises(SessionNotConnected):
        await connection.send(HI)
    with pytest.raises(SessionNotRunning):
        sandbox.engine.connection("s1")
    _, reopened = await sandbox.open()
    assert reopened.kinds() == ["Connected"]


async def test_a_logout_from_the_phone_forgets_the_device(sandbox: Sandbox) -> None:
    connection, recorder = await sandbox.paired()
    await sandbox.engine.faults("s1", logout=True)
    assert recorder.events == [LoggedOut(on_connect=False, reason="unlinked from the phone")]
    assert not connection.is_open
    assert not (sandbox.data_dir / "sandbox" / "s1.json").exists()
    _, reopened = await sandbox.open()
    assert reopened.kinds() == ["QrCode"]


async def test_a_ban_lasts_its_time_and_refuses_opens_until_then(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    connection, recorder = await sandbox.paired()
    expires = clock.now() + timedelta(seconds=30)
    await sandbox.engine.faults("s1", ban_seconds=30)
    assert recorder.events == [Banned(code="101", expires_at=expires)]
    assert not connection.is_open
    await clock.advance(29)
    refused, during = await sandbox.open()
    assert during.events == [Banned(code="101", expires_at=expires)]
    assert not refused.is_open
    await clock.advance(1)
    _, after = await sandbox.open()
    assert after.kinds() == ["Connected"]


async def test_another_client_replaces_the_session_and_credentials_stay(
    sandbox: Sandbox,
) -> None:
    connection, recorder = await sandbox.paired()
    await sandbox.engine.faults("s1", replace=True)
    assert recorder.events == [Replaced()]
    assert not connection.is_open
    _, reopened = await sandbox.open()
    assert reopened.kinds() == ["Connected"]


async def test_an_outdated_client_is_rejected_on_its_next_open_once(sandbox: Sandbox) -> None:
    connection, recorder = await sandbox.paired()
    await sandbox.engine.faults("s1", outdated=True)
    assert recorder.events == [Disconnected(reason="network")]
    assert not connection.is_open
    _, rejected = await sandbox.open()
    assert rejected.events == [ConnectFailed(reason="client_outdated")]
    _, later = await sandbox.open()
    assert later.kinds() == ["Connected"]


async def test_outdated_without_a_connection_waits_for_the_next_open(sandbox: Sandbox) -> None:
    await sandbox.engine.faults("s9", outdated=True, fail_sends=1)
    _, recorder = await sandbox.open("s9")
    assert recorder.events == [ConnectFailed(reason="client_outdated")]


async def test_fault_input_is_validated(sandbox: Sandbox) -> None:
    with pytest.raises(SessionNotRunning):
        await sandbox.engine.faults("s1", disconnect=True)
    _, recorder = await sandbox.paired()
    with pytest.raises(InvalidInput):
        await sandbox.engine.faults("s1", disconnect=True, replace=True)
    with pytest.raises(InvalidInput):
        await sandbox.engine.faults("s1", fail_sends=-1)
    with pytest.raises(InvalidInput):
        await sandbox.engine.faults("s1", ban_seconds=0)
    assert recorder.events == []
    assert sandbox.engine.connection("s1").is_open


async def test_events_of_a_connection_stop_once_it_is_replaced_by_a_new_open(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    first, old = await sandbox.open()
    second, new = await sandbox.open()
    await clock.advance(60)
    assert not first.is_open and second.is_open
    assert old.kinds() == ["QrCode"]
    assert new.kinds() == ["QrCode", "QrCode"]
