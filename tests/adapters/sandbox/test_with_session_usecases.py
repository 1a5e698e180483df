"""The sandbox under the real session use cases: what a newcomer sees without a phone."""

from __future__ import annotations

import random
from pathlib import Path

from tests.unit.usecases.harness import World
from whatsgate.adapters.sandbox import SandboxEngine, SandboxSettings
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import SessionStatus
from whatsgate.testing import FakeClock, MemoryStore, settle
from whatsgate.usecases.sessions import InitializeCommand, SessionCommand

S = SessionStatus


def sandbox_world(
    clock: FakeClock, data_dir: Path, store: MemoryStore | None = None
) -> tuple[World, SandboxEngine]:
    """The session use cases wired on a sandbox engine over ``data_dir``."""
    engine = SandboxEngine(clock, data_dir, SandboxSettings(), rng=random.Random(3))
    world = World(store=store or MemoryStore(), clock=clock, engine=engine)  # type: ignore[arg-type]
    return world, engine


async def test_create_start_scan_connect_and_restart_without_a_qr(tmp_path: Path) -> None:
    clock = FakeClock()
    world, engine = sandbox_world(clock, tmp_path)
    session = await world.new_session()

    started = await world.initialize(InitializeCommand(session_id=session.id))
    assert started.qr is not None and started.qr.startswith("2@")
    assert started.session.status is S.AWAITING_SCAN
    await clock.advance(60)
    rotated = await world.session(session.id)
    assert rotated.qr is not None and rotated.qr != started.qr

    jid = await engine.scan(session.id, phone="+55 66 99628-5154")
    await settle()
    connected = await world.session(session.id)
    assert connected.status is S.CONNECTED and connected.jid == jid
    assert connected.lid is not None and connected.qr is None
    qrs = len(world.events("session.qr"))
    assert qrs == 2

    # A restart: a new engine over the same data dir, new use cases over the same store.
    await world.connections.shutdown()
    restarted, _ = sandbox_world(clock, tmp_path, store=world.store)
    result = await restarted.restore()
    await settle()
    assert result.restored == [session.id]
    after = await restarted.session(session.id)
    assert after.status is S.CONNECTED and after.jid == Jid.phone("5566996285154")
    assert len(restarted.events("session.qr")) == qrs


async def test_the_qr_timeout_stops_an_unscanned_sandbox_session(tmp_path: Path) -> None:
    clock = FakeClock()
    world, engine = sandbox_world(clock, tmp_path)
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await clock.advance(world.settings.qr_timeout)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.STOPPED, "qr_timeout")
    assert engine.current(session.id) is None


async def test_sandbox_faults_drive_the_session_supervisor(tmp_path: Path) -> None:
    clock = FakeClock()
    world, engine = sandbox_world(clock, tmp_path)
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await engine.scan(session.id)
    await settle()

    await engine.faults(session.id, disconnect=True)
    assert (await world.session(session.id)).status is S.RECONNECTING
    await clock.advance(5)
    assert (await world.session(session.id)).status is S.CONNECTED

    await engine.faults(session.id, logout=True)
    stored = await world.session(session.id)
    assert (stored.status, stored.jid) == (S.LOGGED_OUT, None)
    again = await world.initialize(InitializeCommand(session_id=session.id))
    assert again.qr is not None and again.qr.startswith("2@")
    await world.logout(SessionCommand(session_id=session.id))
    assert engine.current(session.id) is None


async def test_ban_replace_and_outdated_faults_end_where_the_supervisor_says(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    world, engine = sandbox_world(clock, tmp_path)
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id))
    await engine.scan(session.id)
    await settle()

    await engine.faults(session.id, ban_seconds=30)
    assert (await world.session(session.id)).status is S.BANNED
    await clock.advance(30)
    assert (await world.session(session.id)).status is S.CONNECTED

    await engine.faults(session.id, replace=True)
    assert (await world.session(session.id)).status is S.REPLACED
    assert engine.current(session.id) is None

    await world.initialize(InitializeCommand(session_id=session.id))
    assert (await world.session(session.id)).status is S.CONNECTED
    await engine.faults(session.id, outdated=True)
    await clock.advance(5)
    stored = await world.session(session.id)
    assert (stored.status, stored.status_reason) == (S.FAILED, "client_outdated")
