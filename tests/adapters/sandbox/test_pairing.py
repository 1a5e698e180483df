from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from whatsgate.adapters.clock import SystemClock
from whatsgate.adapters.sandbox import SandboxSettings
from whatsgate.domain.errors import (
    InvalidInput,
    InvalidPhoneNumber,
    SessionAlreadyConnected,
    SessionNotRunning,
)
from whatsgate.domain.jid import Jid
from whatsgate.ports.engine import (
    Connected,
    CredentialsUnreadable,
    EngineEvent,
    Paired,
    QrCode,
    SessionRef,
)
from whatsgate.testing import FakeClock, settle

from .conftest import Sandbox

_B64 = r"[A-Za-z0-9+/]+={0,2}"
QR_SHAPE = re.compile(rf"^2@{_B64},{_B64},{_B64},{_B64}$")
PAIRING_CODE = re.compile(r"^[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}$")


async def test_an_unpaired_session_gets_qr_codes_rotating_on_whatsapps_schedule(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    _, recorder = await sandbox.open()
    assert recorder.kinds() == ["QrCode"]
    await clock.advance(59.9)
    assert len(recorder.events) == 1
    await clock.advance(0.1)
    assert len(recorder.events) == 2
    await clock.advance(19.9)
    assert len(recorder.events) == 2
    await clock.advance(0.1)
    await clock.advance(20)
    qrs: list[QrCode] = recorder.of(QrCode)
    assert [q.valid_for for q in qrs] == [timedelta(seconds=s) for s in (60, 20, 20, 20)]
    assert all(QR_SHAPE.match(q.code) for q in qrs), qrs[0].code
    assert len({q.code for q in qrs}) == 4
    # The device keys stay; WhatsApp's ref before them changes on every rotation.
    assert len({q.code.split(",")[0] for q in qrs}) == 4


async def test_the_qr_schedule_is_configurable_for_tests(clock: FakeClock, tmp_path: Path) -> None:
    sandbox = Sandbox(clock, tmp_path, SandboxSettings(qr_first=5, qr_next=2))
    _, recorder = await sandbox.open()
    await clock.advance(8.9)  # QR codes at 0, 5 and 7 s
    assert [q.valid_for.total_seconds() for q in recorder.of(QrCode)] == [5, 2, 2]


async def test_a_scan_pairs_persists_credentials_and_stops_the_qr_codes(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    _, recorder = await sandbox.open()
    jid = await sandbox.engine.scan("s1", phone="+55 (66) 99628-5154")
    assert jid == Jid.parse("5566996285154@s.whatsapp.net")
    assert recorder.kinds() == ["QrCode", "Paired", "Connected"]
    paired: Paired = recorder.of(Paired)[0]
    connected: Connected = recorder.of(Connected)[0]
    assert paired.jid == connected.jid == jid
    assert paired.lid is not None and paired.lid.is_lid and connected.lid == paired.lid
    stored = json.loads((sandbox.data_dir / "sandbox" / "s1.json").read_text())
    assert stored["jid"] == str(jid) and stored["lid"] == str(paired.lid)
    await clock.advance(600)
    assert recorder.kinds() == ["QrCode", "Paired", "Connected"]


async def test_a_new_engine_over_the_same_data_dir_connects_without_a_qr(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    _, first = await sandbox.open()
    jid = await sandbox.engine.scan("s1")
    lid = first.of(Paired)[0].lid
    await sandbox.engine.close()

    restarted = sandbox.new_engine()
    _, recorder = await sandbox.open(engine=restarted)
    await clock.advance(120)
    assert recorder.events == [Connected(jid=jid, lid=lid, push_name="Sandbox Phone")]


async def test_the_default_phone_pairs_when_the_scan_names_none(sandbox: Sandbox) -> None:
    await sandbox.open()
    jid = await sandbox.engine.scan("s1")
    assert jid == Jid.phone(sandbox.settings.default_phone)


async def test_logout_and_forget_drop_the_credentials(sandbox: Sandbox) -> None:
    connection, _ = await sandbox.paired()
    await connection.logout()
    assert not connection.is_open
    assert not (sandbox.data_dir / "sandbox" / "s1.json").exists()
    _, recorder = await sandbox.open()
    assert recorder.kinds() == ["QrCode"]

    await sandbox.engine.scan("s1")
    await sandbox.engine.forget(SessionRef("s1"))
    _, again = await sandbox.open()
    assert again.kinds() == ["QrCode"]


async def test_a_pairing_code_looks_like_whatsapps_and_completes_pairing(
    sandbox: Sandbox,
) -> None:
    connection, recorder = await sandbox.open()
    code = await connection.pair_phone("+1 415 555 2671")
    assert PAIRING_CODE.match(code), code
    with pytest.raises(InvalidInput):
        await sandbox.engine.enter_pairing_code("s1", "AAAA-AAAA" if code != "AAAA-AAAA" else "B")
    assert recorder.kinds() == ["QrCode"]
    jid = await sandbox.engine.enter_pairing_code("s1", code.replace("-", "").lower())
    assert jid == Jid.phone("14155552671")
    assert recorder.kinds() == ["QrCode", "Paired", "Connected"]
    with pytest.raises(SessionAlreadyConnected):
        await connection.pair_phone("+1 415 555 2671")


async def test_a_scan_after_a_pairing_code_request_pairs_that_number(sandbox: Sandbox) -> None:
    connection, _ = await sandbox.open()
    await connection.pair_phone("+44 7700 900123")
    assert await sandbox.engine.scan("s1") == Jid.phone("447700900123")


async def test_pairing_input_is_validated(sandbox: Sandbox) -> None:
    with pytest.raises(SessionNotRunning):
        await sandbox.engine.scan("nobody")
    connection, recorder = await sandbox.open()
    with pytest.raises(InvalidPhoneNumber):
        await sandbox.engine.scan("s1", phone="12")
    with pytest.raises(InvalidPhoneNumber):
        await connection.pair_phone("not a phone")
    with pytest.raises(InvalidInput):
        await sandbox.engine.enter_pairing_code("s1", "ABCD-EFGH")  # none was asked for
    assert recorder.kinds() == ["QrCode"]
    await sandbox.engine.scan("s1")
    with pytest.raises(SessionAlreadyConnected):
        await sandbox.engine.scan("s1")


async def test_corrupt_credentials_are_reported_and_forget_recovers(sandbox: Sandbox) -> None:
    folder = sandbox.data_dir / "sandbox"
    folder.mkdir(parents=True)
    (folder / "s1.json").write_text("{not json")
    connection, recorder = await sandbox.open()
    assert recorder.kinds() == ["CredentialsUnreadable"]
    assert "s1.json" in recorder.of(CredentialsUnreadable)[0].error
    assert not connection.is_open
    (folder / "s1.json").write_text(json.dumps({"jid": "not-a-jid@nowhere"}))
    _, recorder = await sandbox.open()
    assert recorder.kinds() == ["CredentialsUnreadable"]
    await sandbox.engine.forget(SessionRef("s1"))
    _, recorder = await sandbox.open()
    assert recorder.kinds() == ["QrCode"]


async def test_a_session_id_unfit_for_a_file_name_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidInput):
        await sandbox.open("../escape")


async def test_a_failing_listener_is_logged_and_the_sandbox_goes_on(
    sandbox: Sandbox, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[EngineEvent] = []

    async def flaky(event: EngineEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="whatsgate.sandbox"):
        await sandbox.engine.open(SessionRef("s1"), flaky)
        await settle()
        await clock.advance(60)
    assert [type(e) for e in seen] == [QrCode, QrCode]
    assert any("listener failed" in r.getMessage() for r in caplog.records)


async def test_closing_the_engine_stops_every_connection(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    connection, recorder = await sandbox.open()
    await sandbox.engine.close()
    await clock.advance(120)
    assert recorder.kinds() == ["QrCode"]
    assert not connection.is_open


async def test_the_system_clock_tells_utc_and_sleeps() -> None:
    clock = SystemClock()
    before = clock.now()
    await clock.sleep(0.001)
    assert before.tzinfo is not None and before.utcoffset() == timedelta(0)
    assert clock.now() > before
