from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from whatsgate.adapters.sandbox import SandboxSettings
from whatsgate.domain.jid import Jid
from whatsgate.ports.engine import HistoryBatch
from whatsgate.testing import FakeClock, settle

from .conftest import Sandbox


async def test_pairing_pushes_the_configured_history_over_40_days(
    clock: FakeClock, tmp_path: Path
) -> None:
    sandbox = Sandbox(clock, tmp_path, SandboxSettings(history_messages=250, history_chunk=100))
    _, recorder = await sandbox.open()
    account = await sandbox.engine.scan("s1")
    await settle()
    assert recorder.kinds() == ["QrCode", "Paired", "Connected"] + ["HistoryBatch"] * 3
    batches: list[HistoryBatch] = recorder.of(HistoryBatch)
    assert [len(b.messages) for b in batches] == [100, 100, 50]
    assert [b.progress for b in batches] == [40, 80, 100]
    assert [b.is_last for b in batches] == [False, False, True]
    messages = [m for b in batches for m in b.messages]
    assert len({m.wa_id for m in messages}) == 250
    now = clock.now()
    times = [m.timestamp for m in messages]
    assert all(now - timedelta(days=40) <= t <= now for t in times)
    assert max(times) - min(times) > timedelta(days=39)
    assert sum(t < now - timedelta(days=30) for t in times) > 40  # beyond ImportHistory's default
    assert {m.from_me for m in messages} == {True, False}
    assert all(m.sender == account for m in messages if m.from_me)
    chats = {m.chat for m in messages}
    assert len(chats) == 5 and sum(c.is_group for c in chats) == 1
    # The address book and LID map come with the first batch.
    assert len(batches[0].contacts) == 4 and batches[1].contacts == ()
    assert {(c.lid, c.jid) for c in batches[0].contacts} == set(batches[0].lid_mappings)
    assert len(await sandbox.engine.connection("s1").contacts()) == 4


async def test_no_history_by_default_and_none_on_reconnect(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    _, recorder = await sandbox.open()
    await sandbox.engine.scan("s1")
    await clock.advance(60)
    assert recorder.of(HistoryBatch) == []


async def test_a_reconnect_does_not_push_history_again(clock: FakeClock, tmp_path: Path) -> None:
    sandbox = Sandbox(clock, tmp_path, SandboxSettings(history_messages=10))
    await sandbox.paired()
    _, recorder = await sandbox.open()
    await clock.advance(60)
    assert recorder.kinds() == ["Connected"]


async def test_history_on_request_is_older_and_of_the_chat_asked(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    connection, recorder = await sandbox.paired()
    ana = Jid.phone("5511987651001")
    await connection.request_history(ana, 12)
    await settle()
    (batch,) = recorder.of(HistoryBatch)
    assert batch.is_last and len(batch.messages) == 12
    assert {m.chat for m in batch.messages} == {ana}
    assert all(m.timestamp < clock.now() - timedelta(days=40) for m in batch.messages)
