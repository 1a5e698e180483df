from __future__ import annotations

import itertools
import logging
from datetime import timedelta

import pytest

from whatsgate.adapters.memory import MemoryUnitOfWork
from whatsgate.domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidPhoneNumber,
    SessionAlreadyConnected,
    SessionNotFound,
    UserNotFound,
)
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import SessionStatus
from whatsgate.testing import settle
from whatsgate.usecases import _steps
from whatsgate.usecases.sessions import (
    CreateSessionCommand,
    InitializeCommand,
    PairingCodeCommand,
    SessionBanned,
    SessionCommand,
)

from .harness import ALICE, World, incoming

S = SessionStatus


@pytest.fixture
def world() -> World:
    return World()


async def test_create_validates_owner_and_name(world: World) -> None:
    org, admin = await world.organization()
    other_org, stranger = await world.organization("Other")
    session = await world.create(
        CreateSessionCommand(organization_id=org.id, owner_id=admin.id, name="  sales ")
    )
    assert (session.name, session.status, session.desired_running) == ("sales", S.STOPPED, False)
    with pytest.raises(AlreadyExists):
        await world.create(
            CreateSessionCommand(organization_id=org.id, owner_id=admin.id, name="sales")
        )
    with pytest.raises(UserNotFound):
        await world.create(
            CreateSessionCommand(organization_id=org.id, owner_id=stranger.id, name="x")
        )
    with pytest.raises(InvalidInput):
        await world.create(CreateSessionCommand(organization_id=org.id, owner_id=admin.id, name=""))
    assert other_org.id != org.id
    assert len(world.store.sessions) == 1


async def test_a_new_session_returns_its_first_qr_and_stores_it(world: World) -> None:
    session = await world.new_session()
    result = await world.initialize(InitializeCommand(session_id=session.id))
    assert result.qr is not None and result.qr.startswith("2@")
    stored = await world.session(session.id)
    assert stored.status is S.AWAITING_SCAN
    assert stored.qr == result.qr
    assert stored.qr_expires_at == world.clock.now() + timedelta(seconds=60)
    assert stored.desired_running is True
    assert [e.data["qr"] for e in world.events("session.qr")] == [result.qr]
    assert world.statuses(session.id) == ["starting", "awaiting_scan"]


async def test_every_qr_rotation_updates_the_session_and_is_published(world: World) -> None:
    session = await world.new_session()
    first = (await world.initialize(InitializeCommand(session_id=session.id))).qr
    await world.clock.advance(60)
    second = await world.fake.rotate_qr(session.id)
    await world.clock.advance(20)
    third = await world.fake.rotate_qr(session.id)
    stored = await world.session(session.id)
    assert stored.qr == third.code
    assert stored.qr_expires_at == world.clock.now() + third.valid_for
    assert [e.data["qr"] for e in world.events("session.qr")] == [first, second.code, third.code]
    # Rotations are not status changes.
    assert world.statuses(session.id) == ["starting", "awaiting_scan"]


async def test_no_scan_within_the_qr_timeout_stops_the_session(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    connection = world.fake.connection(session.id)
    for _ in range(8):  # WhatsApp keeps rotating; rotations do not extend the timeout
        await world.clock.advance(20)
        await world.fake.rotate_qr(session.id)
    await world.clock.advance(180 - 8 * 20 - 1)
    assert (await world.session(session.id)).status is S.AWAITING_SCAN
    await world.clock.advance(1)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.STOPPED, "qr_timeout")
    assert stored.qr is None and stored.desired_running is False
    assert connection.closed
    assert not world.connections.is_open(session.id)


async def test_pairing_stores_the_account_and_clears_the_qr(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    jid = await world.fake.scan(session.id, phone="+55 66 99628-5154", lid="271234567890123")
    stored = await world.session(session.id)
    assert stored.status is S.CONNECTED
    assert stored.jid == jid == Jid.parse("5566996285154@s.whatsapp.net")
    assert stored.lid == Jid.parse("271234567890123@lid")
    assert stored.qr is None and stored.qr_expires_at is None
    assert stored.paired_at == stored.last_connected_at == world.clock.now()
    last = world.events("session.status")[-1]
    assert last.data["status"] == "connected" and last.data["jid"] == str(jid)
    # The QR timeout no longer applies.
    await world.clock.advance(600)
    assert (await world.session(session.id)).status is S.CONNECTED


async def test_a_restart_restores_running_sessions_without_a_qr(world: World) -> None:
    paired = await world.new_session("paired")
    await world.initialize(InitializeCommand(session_id=paired.id))
    await world.fake.scan(paired.id)
    org_id = paired.organization_id
    async with world.uow() as uow:
        owner = (await uow.users.in_organization(org_id))[0]
    waiting = await world.create(
        CreateSessionCommand(organization_id=org_id, owner_id=owner.id, name="waiting")
    )
    await world.initialize(InitializeCommand(session_id=waiting.id))
    stopped = await world.create(
        CreateSessionCommand(organization_id=org_id, owner_id=owner.id, name="stopped")
    )
    qrs_before = len(world.events("session.qr"))

    world.build()  # new use case objects over the same repositories and device store
    result = await world.restore()
    await settle()

    assert sorted(result.restored) == sorted([paired.id, waiting.id])
    assert (await world.session(paired.id)).status is S.CONNECTED
    assert (await world.session(stopped.id)).status is S.STOPPED
    new_qrs = list(world.events("session.qr")[qrs_before:])
    assert [e.session_id for e in new_qrs] == [waiting.id]  # none for the paired one
    assert world.connections.is_open(paired.id)


async def test_a_transient_drop_reconnects_with_capped_backoff(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    opens = len(world.fake.opens_of(session.id))

    world.fake.network_down = True
    await world.fake.drop(session.id)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.RECONNECTING, "network")

    await world.clock.advance(15 * 60)
    attempts = world.fake.opens_of(session.id)[opens:]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    # About 1 s doubling to 60 s, each within ±20 % jitter; never faster than the ladder.
    expected = [2, 4, 8, 16, 32, 60, 60, 60]
    for gap, want in zip(gaps, expected, strict=False):
        assert want * 0.8 <= gap <= want * 1.2
    assert all(g <= 72 for g in gaps)
    # Bounded: no minute after the first two holds more than two attempts.
    late = [a for a in attempts if a >= attempts[0] + timedelta(minutes=2)]
    for start in late:
        assert sum(1 for a in late if start <= a < start + timedelta(minutes=1)) <= 2
    assert 14 <= len(attempts) <= 22
    assert (await world.session(session.id)).status is S.RECONNECTING

    world.fake.network_down = False
    await world.clock.advance(75)
    assert (await world.session(session.id)).status is S.CONNECTED
    # Success reset the back-off: the next drop retries after about a second again.
    before = len(world.fake.opens_of(session.id))
    await world.fake.drop(session.id)
    await world.clock.advance(1.3)
    assert len(world.fake.opens_of(session.id)) == before + 1
    assert (await world.session(session.id)).status is S.CONNECTED
    # One status event per real change, not per attempt.
    assert world.statuses(session.id).count("reconnecting") == 2


async def test_logged_out_drops_credentials_and_the_next_start_yields_a_qr(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    await world.fake.log_out(session.id)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.LOGGED_OUT, "logged_out")
    assert stored.jid is None and stored.desired_running is False
    assert session.id not in world.fake.credentials
    assert not world.connections.is_open(session.id)
    result = await world.initialize(InitializeCommand(session_id=session.id))
    assert result.qr is not None and result.session.status is S.AWAITING_SCAN


async def test_logged_out_on_connect_is_told_apart(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    world.build()
    await world.restore()
    await settle()
    await world.fake.log_out(session.id, on_connect=True)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.LOGGED_OUT, "logged_out_on_connect")
    assert session.id not in world.fake.credentials


async def test_a_temporary_ban_waits_for_its_expiry(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    opens = len(world.fake.opens_of(session.id))
    until = world.clock.now() + timedelta(hours=1)
    await world.fake.ban(session.id, until)
    stored = await world.session(session.id)
    assert (stored.status, stored.banned_until) == (S.BANNED, until)
    with pytest.raises(SessionBanned):
        await world.initialize(InitializeCommand(session_id=session.id))
    await world.clock.advance(3599)
    assert len(world.fake.opens_of(session.id)) == opens  # no reconnect before the expiry
    await world.clock.advance(2)
    assert len(world.fake.opens_of(session.id)) == opens + 1
    stored = await world.session(session.id)
    assert stored.status is S.CONNECTED and stored.banned_until is None


async def test_replaced_does_not_fight_back(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    opens = len(world.fake.opens_of(session.id))
    await world.fake.replace(session.id)
    await world.clock.advance(3600)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.REPLACED, "replaced")
    assert stored.desired_running is False
    assert len(world.fake.opens_of(session.id)) == opens
    assert session.id in world.fake.credentials  # still paired: a start takes it back


async def test_an_outdated_client_fails_with_its_reason(world: World) -> None:
    session = await world.new_session()
    world.fake.outdated = True
    await world.initialize(InitializeCommand(session_id=session.id))
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.FAILED, "client_outdated")
    await world.clock.advance(3600)
    assert len(world.fake.opens_of(session.id)) == 1


async def test_corrupt_credentials_fail_clearly_and_logout_clears_them(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    world.fake.corrupt_credentials.add(session.id)
    await world.stop(SessionCommand(session_id=session.id))
    qrs = len(world.events("session.qr"))
    await world.initialize(InitializeCommand(session_id=session.id))
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.FAILED, "credentials_corrupted")
    assert len(world.events("session.qr")) == qrs  # no silent new QR
    await world.logout(SessionCommand(session_id=session.id))
    result = await world.initialize(InitializeCommand(session_id=session.id))
    assert result.session.status is S.AWAITING_SCAN and result.qr


async def test_stop_keeps_the_pairing(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    jid = await world.fake.scan(session.id)
    connection = world.fake.connection(session.id)
    stopped = await world.stop(SessionCommand(session_id=session.id))
    assert (stopped.status, stopped.status_reason, stopped.jid) == (S.STOPPED, "by_user", jid)
    assert connection.closed and not connection.logged_out
    world.build()
    assert (await world.restore()).restored == []  # stopped sessions stay stopped
    result = await world.initialize(InitializeCommand(session_id=session.id))
    assert result.session.status is S.CONNECTED and result.qr is None


async def test_logout_forgets_the_pairing(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    connection = world.fake.connection(session.id)
    stored = await world.logout(SessionCommand(session_id=session.id))
    assert stored.status is S.LOGGED_OUT and stored.jid is None
    assert connection.logged_out
    assert session.id not in world.fake.credentials


async def test_delete_removes_the_session_and_its_data(world: World) -> None:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    await world.media.put(f"{session.id}/photo", b"jpeg")
    await world.media.put("other-session/photo", b"jpeg")
    connection = world.fake.connection(session.id)
    await world.delete(SessionCommand(session_id=session.id))
    assert session.id not in world.store.sessions
    assert all(e.session_id != session.id for e in world.store.events)
    assert connection.logged_out and session.id not in world.fake.credentials
    assert list(world.media.blobs) == ["other-session/photo"]
    with pytest.raises(SessionNotFound):
        await world.initialize(InitializeCommand(session_id=session.id))


async def test_pairing_by_phone_code(world: World) -> None:
    session = await world.new_session()
    with pytest.raises(InvalidPhoneNumber):
        await world.pairing_code(PairingCodeCommand(session_id=session.id, phone="call me"))
    code = await world.pairing_code(
        PairingCodeCommand(session_id=session.id, phone="+55 66 99628-5154")
    )
    assert code.code == "FAKE-CODE"
    assert world.fake.pairing_requests == [(session.id, "5566996285154")]
    await world.fake.scan(session.id)
    with pytest.raises(SessionAlreadyConnected):
        await world.pairing_code(PairingCodeCommand(session_id=session.id, phone="+5566996285154"))


async def test_starting_a_running_session_is_idempotent(world: World) -> None:
    session = await world.new_session()
    first = await world.initialize(InitializeCommand(session_id=session.id))
    again = await world.initialize(InitializeCommand(session_id=session.id))
    assert again.qr == first.qr
    assert len(world.fake.opens_of(session.id)) == 1


async def test_every_status_change_is_logged_with_id_statuses_and_reason(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="whatsgate.sessions")
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await world.fake.scan(session.id)
    await world.fake.replace(session.id)
    changes = [
        (r.session_id, r.old_status, r.new_status, r.reason)  # type: ignore[attr-defined]
        for r in caplog.records
        if hasattr(r, "new_status")
    ]
    assert changes == [
        (session.id, "stopped", "starting", None),
        (session.id, "starting", "awaiting_scan", None),
        (session.id, "awaiting_scan", "connected", None),
        (session.id, "connected", "replaced", "replaced"),
    ]


async def test_a_session_is_deleted_in_steps_each_committed_on_its_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its rows go ``DELETE_STEP`` at a time, each step its own unit of work (on SQLite,
    other sessions' writers take their turns in between), then the session itself."""
    monkeypatch.setattr(_steps, "DELETE_STEP", 4)
    session = await world.connected_session()
    other = await world.connected_session("support", phone="5511900000009")
    for n in range(3):
        await world.receive(session.id, incoming(f"W{n}", chat=ALICE))
        await world.receive(other.id, incoming(f"O{n}", chat=ALICE))
    left: list[int] = []  # rows under the session in the store after each step's commit

    def rows() -> int:
        store = world.store
        tables = (store.contacts, store.conversations, store.messages)
        return sum(1 for t in tables for r in t.values() if r.session_id == session.id) + sum(
            1 for e in store.events if e.session_id == session.id
        )

    class Stepping(MemoryUnitOfWork):
        async def commit(self) -> None:
            await super().commit()
            left.append(rows())

    before = rows()
    assert before > 8
    world.delete.uow = lambda: Stepping(world.store)
    await world.delete(SessionCommand(session_id=session.id))
    steps = (before + 3) // 4
    assert left[:steps] == [max(0, before - 4 * k) for k in range(1, steps + 1)]
    assert left[-1] == 0 and session.id not in world.store.sessions
    assert other.id in world.store.sessions
    assert len([m for m in world.store.messages.values() if m.session_id == other.id]) == 3
