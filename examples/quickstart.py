"""A session's life on the in-memory fakes: what `whatsgate.testing` gives your own tests.

python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from whatsgate.domain.organization import Organization, Role, User
from whatsgate.testing import FakeClock, FakeEngine, MemoryStore, MemoryUnitOfWork
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.engine_events import EngineEventRouter
from whatsgate.usecases.sessions import (
    CreateSession,
    CreateSessionCommand,
    HandleDisconnect,
    InitializeCommand,
    InitializeWhatsAppClient,
    SessionSettings,
    UpdateUserWhatsAppSession,
)


async def main() -> None:
    store, clock, settings = MemoryStore(), FakeClock(), SessionSettings()
    engine = FakeEngine(clock)

    def uow() -> MemoryUnitOfWork:
        return MemoryUnitOfWork(store)

    connections = SessionConnections(engine, clock)
    router = EngineEventRouter(
        UpdateUserWhatsAppSession(uow, connections, clock, settings),
        HandleDisconnect(uow, connections, clock, settings),
    )
    connections.bind(router)

    org = Organization(name="Acme", created_at=clock.now())
    admin = User(organization_id=org.id, name="Ana", role=Role.ADMIN, created_at=clock.now())
    async with uow() as tx:
        await tx.organizations.add(org)
        await tx.users.add(admin)
        await tx.commit()

    session = await CreateSession(uow, clock)(
        CreateSessionCommand(organization_id=org.id, owner_id=admin.id, name="sales")
    )
    started = await InitializeWhatsAppClient(uow, connections, clock, settings)(
        InitializeCommand(session_id=session.id)
    )
    print(f"{started.session.name}: {started.session.status}, scan this QR: {started.qr}")

    await engine.scan(session.id, phone="+55 66 99628-5154")  # the phone scans it
    async with uow() as tx:
        paired = await tx.sessions.get(session.id)
    assert paired is not None
    print(f"{paired.name}: {paired.status} as {paired.jid}")
    for event in store.events:
        print(f"  event {event.id}: {event.name}")


if __name__ == "__main__":
    asyncio.run(main())
