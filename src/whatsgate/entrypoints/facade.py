"""``WhatsGate``: whatsgate as a library, without the HTTP server.

    async with WhatsGate.open(Settings(engine="sandbox")) as gate:
        session = await gate.create_session("sales", start=True)
        print(session.qr)                       # scan it with WhatsApp
        async for event in gate.events(session_id=session.id):
            print(event.name, event.data)       # session.status, message.new, …

It runs what the server runs (storage, engine, outbox, restore on open, clean close) and acts
as the admin of the ``default`` organization.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from whatsgate.domain.auth import Principal
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.message import Message, MessageKind
from whatsgate.domain.organization import User
from whatsgate.domain.session import Session
from whatsgate.entrypoints.container import Application
from whatsgate.entrypoints.runtime import Runtime
from whatsgate.entrypoints.settings import Settings
from whatsgate.ports.engine import NumberCheck
from whatsgate.usecases.send import (
    CheckNumbersCommand,
    SendMessageCommand,
    SendMessageResult,
)
from whatsgate.usecases.sessions import (
    CreateSessionCommand,
    InitializeCommand,
    SessionCommand,
)

log = logging.getLogger("whatsgate")

EventCallback = Callable[[StoredEvent], Awaitable[None]]


class WhatsGate:
    """An open whatsgate. Make it with ``WhatsGate.open(settings)``."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._closed = asyncio.Event()
        self._subscriptions: set[asyncio.Task[None]] = set()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings | None = None, *, container: Application | None = None
    ) -> AsyncIterator[WhatsGate]:
        """Start whatsgate (migrate, engine, restore the sessions that were running, the
        outbox) and close it cleanly on leaving the block."""
        runtime = await Runtime.start(settings or Settings(), container, announce=None)
        gate = cls(runtime)
        try:
            yield gate
        finally:
            await gate.close()

    async def close(self) -> None:
        """Stop the event streams and subscriptions, suspend the sessions, close everything.
        Sessions that were running are restored by the next ``open``."""
        if self._closed.is_set():
            return
        self._closed.set()
        for task in list(self._subscriptions):
            task.cancel()
        for task in list(self._subscriptions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._runtime.stop()

    def _get(self, name: str) -> Any:
        return self._runtime.objects[name]

    @property
    def admin(self) -> User:
        """The user the facade acts as: the admin of the ``default`` organization."""
        assert self._runtime.bootstrap is not None
        return self._runtime.bootstrap.admin

    # -- sessions -------------------------------------------------------------------------

    async def create_session(self, name: str, *, start: bool = False) -> Session:
        """A new session; with ``start`` it starts and the first QR is awaited briefly."""
        admin = self.admin
        session: Session = await self._get("create_session")(
            CreateSessionCommand(
                organization_id=admin.organization_id, owner_id=admin.id, name=name
            )
        )
        if start:
            session = await self.start(session.id)
        return session

    async def start(self, session_id: str, *, wait: bool = True) -> Session:
        """Start (or resume) a session; ``wait`` for its first QR or its connection."""
        result = await self._get("initialize_client")(
            InitializeCommand(session_id=session_id, wait=wait)
        )
        session: Session = result.session
        return session

    async def qr(self, session_id: str) -> Session:
        """The session with its current QR (``session.qr``), starting it if needed."""
        session: Session = await self._get("get_qr_code")(session_id)
        return session

    async def stop(self, session_id: str) -> Session:
        session: Session = await self._get("stop_session")(SessionCommand(session_id=session_id))
        return session

    async def logout(self, session_id: str) -> Session:
        session: Session = await self._get("logout_session")(SessionCommand(session_id=session_id))
        return session

    async def delete(self, session_id: str) -> None:
        await self._get("delete_session")(SessionCommand(session_id=session_id))

    async def session(self, session_id: str) -> Session:
        session: Session = await self._get("access").session(self._principal(), session_id)
        return session

    async def sessions(self) -> list[Session]:
        sessions: list[Session] = await self._get("access").sessions(self._principal())
        return sessions

    def _principal(self) -> Principal:
        admin = self.admin
        return Principal(user_id=admin.id, organization_id=admin.organization_id, role=admin.role)

    # -- messages -------------------------------------------------------------------------

    async def send(self, command: SendMessageCommand) -> SendMessageResult:
        """Queue any message (see ``SendMessageCommand``); the outbox sends it."""
        result: SendMessageResult = await self._get("send_message")(command)
        return result

    async def send_text(
        self, session_id: str, to: str, text: str, *, reply_to: str | None = None
    ) -> Message:
        """Queue a text to a phone number (any usual format) or a JID."""
        result = await self.send(
            SendMessageCommand(
                session_id=session_id, to=to, kind=MessageKind.TEXT, text=text, reply_to=reply_to
            )
        )
        return result.message

    async def message(self, message_id: str) -> Message:
        message: Message = await self._get("access").message(self._principal(), message_id)
        return message

    async def check_numbers(self, session_id: str, numbers: list[str]) -> list[NumberCheck]:
        checks: list[NumberCheck] = await self._get("check_numbers")(
            CheckNumbersCommand(session_id=session_id, numbers=tuple(numbers))
        )
        return checks

    # -- events ---------------------------------------------------------------------------

    async def events(
        self, *, session_id: str | None = None, after: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Every stored event from now on (or after the event id ``after``), in order, as it
        is committed; ends when the gate closes."""
        signal = self._get("commit_signal")
        wake: asyncio.Event = signal.subscribe()
        uow = self._get("uow")
        try:
            if after is None:
                async with uow() as unit:
                    after = await unit.events.last_id()
            cursor: int = after
            while not self._closed.is_set():
                wake.clear()
                async with uow() as unit:
                    batch: list[StoredEvent] = await unit.events.after(
                        cursor, session_id=session_id, limit=500
                    )
                for event in batch:
                    cursor = event.id
                    yield event
                if batch:
                    continue
                waiters = {
                    asyncio.ensure_future(wake.wait()),
                    asyncio.ensure_future(self._closed.wait()),
                }
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            signal.unsubscribe(wake)

    def subscribe(
        self, callback: EventCallback, *, session_id: str | None = None
    ) -> asyncio.Task[None]:
        """Call ``callback`` with every event from now on, until the gate closes (or the
        returned task is cancelled). A callback error is logged and the stream goes on."""

        async def run() -> None:
            async for event in self.events(session_id=session_id):
                try:
                    await callback(event)
                except Exception:
                    log.exception("an event callback failed")

        task = asyncio.create_task(run(), name="whatsgate:subscription")
        self._subscriptions.add(task)
        task.add_done_callback(self._subscriptions.discard)
        return task
