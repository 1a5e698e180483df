"""The live engine connections of this process: at most one per session.

This is mechanism, not policy: it opens and closes engine connections, hands their events to
one handler in order, drops events of a connection that was replaced, runs per-session timers
(QR timeout, reconnect) on the Clock, and lets callers wait for a fresh connection's first
decisive event. The use cases decide what to do with all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from whatsgate.domain.errors import SessionNotConnected, SessionNotRunning
from whatsgate.domain.session import Session
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    CredentialsUnreadable,
    Disconnected,
    EngineConnection,
    EngineEvent,
    LoggedOut,
    QrCode,
    Replaced,
    SessionRef,
    WhatsAppEngine,
)

log = logging.getLogger(__name__)

EventHandler = Callable[[str, EngineEvent], Awaitable[None]]

#: Events that settle a fresh connection: the caller waiting on ``open`` learns the outcome.
_DECISIVE = (
    QrCode,
    Connected,
    Disconnected,
    LoggedOut,
    Banned,
    Replaced,
    ConnectFailed,
    CredentialsUnreadable,
)


@dataclass(eq=False)
class _Live:
    generation: int
    connection: EngineConnection | None = None
    #: The first decisive event; None when the connection closed before one came.
    ready: asyncio.Future[EngineEvent | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SessionConnections:
    def __init__(self, engine: WhatsAppEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._handler: EventHandler | None = None
        self._live: dict[str, _Live] = {}
        self._timers: dict[str, dict[str, asyncio.Task[None]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._attempts: dict[str, int] = {}
        self._generations = itertools.count(1)

    def bind(self, handler: EventHandler) -> None:
        """Set the one handler of every engine event (done once, at wiring)."""
        self._handler = handler

    def lock(self, session_id: str) -> asyncio.Lock:
        """Serialises lifecycle changes of one session (start, stop, engine lifecycle events)."""
        return self._locks.setdefault(session_id, asyncio.Lock())

    # -- connections ----------------------------------------------------------------------

    def is_open(self, session_id: str) -> bool:
        return session_id in self._live

    def open_sessions(self) -> list[str]:
        return list(self._live)

    def get(self, session_id: str) -> EngineConnection:
        """The live connection, or ``SessionNotRunning``."""
        live = self._live.get(session_id)
        if live is None or live.connection is None:
            raise SessionNotRunning(session_id=session_id)
        return live.connection

    async def open(self, session: Session) -> None:
        """Open a connection for the session, closing any previous one first."""
        await self._close_connection(session.id)
        live = _Live(next(self._generations))
        self._live[session.id] = live

        async def listener(event: EngineEvent) -> None:
            await self._deliver(session.id, live, event)

        ref = SessionRef(session.id, session.jid)
        try:
            live.connection = await self.engine.open(ref, listener)
        except BaseException:
            if self._live.get(session.id) is live:
                del self._live[session.id]
            raise

    async def wait_ready(self, session_id: str, within: float) -> EngineEvent | None:
        """The first decisive event of the current connection, or None after ``within`` seconds."""
        live = self._live.get(session_id)
        if live is None:
            raise SessionNotConnected(session_id=session_id)
        if live.ready.done():
            return live.ready.result()
        sleeper: asyncio.Future[None] = asyncio.ensure_future(self.clock.sleep(within))
        waiting: set[asyncio.Future[object]] = {live.ready, sleeper}  # type: ignore[arg-type]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        return live.ready.result() if live.ready.done() else None

    async def close(self, session_id: str, *, logout: bool = False) -> None:
        """Close the connection (``logout`` also unlinks the device) and cancel the timers."""
        self.cancel_timers(session_id)
        self._attempts.pop(session_id, None)
        await self._close_connection(session_id, logout=logout)

    async def close_all(self) -> None:
        for session_id in list(self._live):
            await self.close(session_id)

    async def _close_connection(self, session_id: str, *, logout: bool = False) -> None:
        live = self._live.pop(session_id, None)
        if live is None or live.connection is None:
            return
        if not live.ready.done():
            live.ready.set_result(None)
        try:
            if logout:
                await live.connection.logout()
            else:
                await live.connection.disconnect()
        except Exception:
            log.warning(
                "session %s: closing the engine connection failed", session_id, exc_info=True
            )
            if logout:
                raise

    async def _deliver(self, session_id: str, live: _Live, event: EngineEvent) -> None:
        if self._live.get(session_id) is not live:
            log.debug("session %s: dropped %s from a replaced connection", session_id, event)
            return
        assert self._handler is not None, "SessionConnections.bind() was never called"
        try:
            await self._handler(session_id, event)
        finally:
            if isinstance(event, _DECISIVE) and not live.ready.done():
                live.ready.set_result(event)

    # -- reconnect attempts ---------------------------------------------------------------

    def next_attempt(self, session_id: str) -> int:
        self._attempts[session_id] = self._attempts.get(session_id, 0) + 1
        return self._attempts[session_id]

    def reset_attempts(self, session_id: str) -> None:
        self._attempts.pop(session_id, None)

    # -- timers ---------------------------------------------------------------------------

    def schedule(
        self, session_id: str, key: str, delay: float, callback: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``callback`` after ``delay`` seconds of the Clock, replacing a timer of the
        same key. Timers die with ``close`` (or ``cancel``)."""
        timers = self._timers.setdefault(session_id, {})
        previous = timers.pop(key, None)
        if previous is not None:
            previous.cancel()

        async def run() -> None:
            await self.clock.sleep(delay)
            if timers.get(key) is task:
                del timers[key]  # from here on a close() does not cancel the callback itself
            try:
                await callback()
            except Exception:
                log.exception("session %s: timer %s failed", session_id, key)

        task = asyncio.create_task(run(), name=f"whatsgate:{session_id}:{key}")
        timers[key] = task

    def cancel(self, session_id: str, key: str) -> None:
        task = self._timers.get(session_id, {}).pop(key, None)
        if task is not None:
            task.cancel()

    def has_timer(self, session_id: str, key: str) -> bool:
        return key in self._timers.get(session_id, {})

    def cancel_timers(self, session_id: str) -> None:
        for task in self._timers.pop(session_id, {}).values():
            task.cancel()

    async def shutdown(self) -> None:
        """Cancel every timer and close every connection (server shutdown)."""
        for session_id in list(self._timers):
            self.cancel_timers(session_id)
        await self.close_all()
        with contextlib.suppress(Exception):
            await self.engine.close()
