"""A realtime test world (memory store, tokens) and a recording socket.io client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import socketio

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import NotAuthenticated
from whatsgate.domain.events import EVENT_NAMES, ContactsSynced, ConversationUpdated, StoredEvent
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.session import Session
from whatsgate.testing import FakeClock, MemoryStore, MemoryUnitOfWork

WAIT = 5.0


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=FakeClock)
    tokens: dict[str, Principal] = field(default_factory=dict)

    def uow(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.store)

    async def authenticate(self, token: str) -> Principal:
        principal = self.tokens.get(token)
        if principal is None:
            raise NotAuthenticated("Unknown token.")
        return principal

    async def organization(self, name: str) -> tuple[Organization, list[User]]:
        now = self.clock.now()
        org = Organization(name=name, created_at=now)
        users = [
            User(organization_id=org.id, name="Ana", role=Role.ADMIN, created_at=now),
            User(organization_id=org.id, name="Bo", role=Role.AGENT, created_at=now),
            User(organization_id=org.id, name="Cy", role=Role.AGENT, created_at=now),
        ]
        async with self.uow() as uow:
            await uow.organizations.add(org)
            for user in users:
                await uow.users.add(user)
                self.tokens[f"{name}-{user.name}"] = Principal(
                    user_id=user.id, organization_id=org.id, role=user.role
                )
            await uow.commit()
        return org, users

    async def session(self, org: Organization, owner: User, shared: list[User]) -> Session:
        session = Session(
            organization_id=org.id, owner_id=owner.id, name="sales", created_at=self.clock.now()
        )
        session.share_with(frozenset(u.id for u in shared))
        async with self.uow() as uow:
            await uow.sessions.add(session)
            await uow.commit()
        return session

    async def store_event(self, session: Session, *, assignee: str | None = None) -> StoredEvent:
        async with self.uow() as uow:
            now = self.clock.now()
            if assignee is None:
                uow.events.add(
                    ContactsSynced(
                        organization_id=session.organization_id,
                        session_id=session.id,
                        occurred_at=now,
                        count=len(self.store.events),
                    )
                )
            else:
                uow.events.add(
                    ConversationUpdated(
                        organization_id=session.organization_id,
                        session_id=session.id,
                        occurred_at=now,
                        conversation={"id": "c1", "assignee_id": assignee, "unread_count": 1},
                    )
                )
            await uow.commit()
        return self.store.events[-1]


class Client:
    """A socket.io client that records every whatsgate event it gets, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.errors: list[Any] = []
        self.arrived = asyncio.Condition()
        for name in EVENT_NAMES:
            self.sio.on(name, self._record)
        self.sio.on("connect_error", self._connect_error)

    async def _record(self, data: dict[str, Any]) -> None:
        async with self.arrived:
            self.events.append(data)
            self.arrived.notify_all()

    async def _connect_error(self, data: Any) -> None:
        self.errors.append(data)

    async def connect(self, base: str, token: str | None) -> None:
        auth = {"token": token} if token is not None else None
        await self.sio.connect(base, auth=auth, transports=["websocket"], wait_timeout=WAIT)

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        answer = await self.sio.call(event, data, timeout=WAIT)
        assert isinstance(answer, dict)
        return answer

    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    async def wait_for(self, event_id: int) -> None:
        async with asyncio.timeout(WAIT), self.arrived:
            await self.arrived.wait_for(lambda: event_id in self.ids())
