"""whatsgate's use cases wired on a real store, the real clock and the sandbox engine, as the
server's container does: what the benchmarks drive when they measure a path in process."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench._fixtures import now, sqlite_url


@asynccontextmanager
async def sql_store(path: Path, on_commit: Any = None) -> AsyncIterator[Any]:
    """A migrated SQLite database at ``path``; yields its unit-of-work factory."""
    from whatsgate.adapters.sql.database import create_engine_for
    from whatsgate.adapters.sql.migrations import migrate
    from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory

    url = sqlite_url(path)
    await migrate(url)
    engine = create_engine_for(url)
    try:
        yield SqlUnitOfWorkFactory(engine, on_commit=on_commit)
    finally:
        await engine.dispose()


class World:
    """The session, sending and inbound use cases over one store and a sandbox engine (or the
    ``engine`` given, with the session ``settings`` given)."""

    def __init__(
        self,
        uow: Any,
        data_dir: Path,
        *,
        pacing: bool = True,
        engine: Any = None,
        settings: Any = None,
    ) -> None:
        from whatsgate.adapters.clock import SystemClock
        from whatsgate.adapters.memory.media import MemoryMediaStore
        from whatsgate.adapters.sandbox import SandboxSettings
        from whatsgate.domain.pacing import PacingPolicy, SendPacer
        from whatsgate.ports.engine import IncomingMessage
        from whatsgate.usecases.connections import SessionConnections
        from whatsgate.usecases.engine_events import EngineEventRouter
        from whatsgate.usecases.ingest import ProcessIncomingMessage
        from whatsgate.usecases.outbox import DeliverOutbox, OutboxSettings, OutboxWorker
        from whatsgate.usecases.send import SendMessage
        from whatsgate.usecases.sessions import (
            HandleDisconnect,
            InitializeWhatsAppClient,
            RestoreSessions,
            SessionSettings,
            UpdateUserWhatsAppSession,
        )

        self.uow = uow
        self.clock = SystemClock()
        # Receipts far off: the benchmarks measure sends, not the phone's answers.
        self.engine = engine or timed_sandbox(
            self.clock, data_dir, SandboxSettings(delivered_after=3600, read_after=3600)
        )
        self.connections = SessionConnections(self.engine, self.clock)
        settings = settings or SessionSettings()
        self.initialize = InitializeWhatsAppClient(uow, self.connections, self.clock, settings)
        update = UpdateUserWhatsAppSession(uow, self.connections, self.clock, settings)
        disconnect = HandleDisconnect(uow, self.connections, self.clock, settings, random.Random(7))
        self.restore = RestoreSessions(uow, self.initialize, settings)
        self.router = EngineEventRouter(update, disconnect)
        self.connections.bind(self.router)
        self.ingest = ProcessIncomingMessage(uow, self.clock)
        self.router.register(IncomingMessage, self.ingest.handle)
        policy = PacingPolicy() if pacing else unpaced()
        outbox_settings = OutboxSettings(pacing=policy)
        self.pacer = SendPacer(policy, random.Random(11))
        self.wake = asyncio.Event()
        self.media = MemoryMediaStore()
        self.send = SendMessage(uow, self.clock, self.media, self.pacer, self.wake)
        self.deliver = DeliverOutbox(
            uow,
            self.connections,
            self.clock,
            self.media,
            self.pacer,
            outbox_settings,
            random.Random(13),
        )
        self.outbox_worker = OutboxWorker(self.deliver, self.clock, self.wake)

    async def wait_connected(self, count: int, limit_s: float = 120.0) -> None:
        """Until ``count`` sessions are ``connected`` in the store."""
        from whatsgate.domain.session import SessionStatus

        deadline = time.monotonic() + limit_s
        while True:
            async with self.uow() as unit:
                counts = await unit.sessions.count_by_status()
            if counts.get(str(SessionStatus.CONNECTED), 0) >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {count} sessions connected: {counts}")
            await asyncio.sleep(0.01)


def _timed_sandbox() -> type:
    from whatsgate.adapters.sandbox import SandboxEngine

    class Timed(SandboxEngine):
        """The sandbox engine, noting when each send starts (``time.monotonic_ns()``, by the
        text sent): the end of the outbox path as the engine sees it."""

        send_started: dict[str, int]

        async def open(self, ref: Any, listener: Any) -> Any:
            connection = await super().open(ref, listener)
            return _TimedConnection(connection, self)

    return Timed


class _TimedConnection:
    def __init__(self, inner: Any, engine: Any) -> None:
        self._inner = inner
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send(self, message: Any) -> Any:
        started = getattr(self._engine, "send_started", None)
        if started is None:
            started = self._engine.send_started = {}
        started[message.text or ""] = time.monotonic_ns()
        return await self._inner.send(message)


def timed_sandbox(*args: Any, **kwargs: Any) -> Any:
    engine = _timed_sandbox()(*args, **kwargs)
    engine.send_started = {}
    return engine


def unpaced() -> Any:
    """Pacing off: a budget no benchmark reaches and no gap between sends."""
    from whatsgate.domain.pacing import PacingPolicy

    return PacingPolicy(per_window=1_000_000_000, window=60.0, gap_min=0.0, gap_max=0.0)


async def paired_sessions(
    uow: Any, data_dir: Path, count: int, *, credentials: bool = True
) -> list[str]:
    """``count`` sessions of one organization, paired in the sandbox (stored credentials) and
    marked to run: what a restore brings back without a QR. Returns their ids.
    ``credentials=False``: the sandbox's are not written (another engine's store is seeded)."""
    from whatsgate.adapters.sandbox import Credentials, CredentialStore
    from whatsgate.domain.jid import Jid
    from whatsgate.domain.organization import Organization, Role, User
    from whatsgate.domain.session import Session

    at = now()
    organization = Organization(name="bench", created_at=at)
    user = User(organization_id=organization.id, name="admin", role=Role.ADMIN, created_at=at)
    store = CredentialStore(data_dir)
    ids: list[str] = []
    async with uow() as unit:
        await unit.organizations.add(organization)
        await unit.users.add(user)
        for i in range(count):
            jid = Jid.parse(f"5521{i:09d}@s.whatsapp.net")
            session = Session(
                organization_id=organization.id,
                owner_id=user.id,
                name=f"session {i}",
                created_at=at,
                jid=jid,
                paired_at=at,
                desired_running=True,
            )
            await unit.sessions.add(session)
            if credentials:
                store.save(session.id, Credentials(jid=jid, push_name=f"Phone {i}"))
            ids.append(session.id)
        await unit.commit()
    return ids
