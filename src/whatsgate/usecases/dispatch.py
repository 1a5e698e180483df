"""The event dispatcher: from the event log to the publishers (socket.io, webhooks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from whatsgate.ports.clock import Clock
from whatsgate.ports.publisher import EventPublisher
from whatsgate.ports.repositories import UnitOfWorkFactory

log = logging.getLogger("whatsgate.dispatch")


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchSettings:
    #: Events read from the log at a time (and handed before the cursor is saved).
    batch_size: int = 100
    #: A publisher that failed is tried again after this many seconds (or at the next wake).
    retry_delay: float = 1.0


def cursor_name(publisher: str) -> str:
    return f"publisher:{publisher}"


class EventDispatcher:
    """Hands every stored event to every publisher, once each, in log order.

    - Only stored events are handed out: events are written by the unit of work that made the
      change, and read back from the log here after it committed.
    - Each publisher has its own cursor in the log (``publisher:<name>``), saved after each
      batch it took: a restart resumes where it stopped (a crash between handing a batch and
      saving its cursor hands that batch again; the event id lets consumers tell).
    - In log order, so in order per session; a failing publisher is retried from its cursor
      (after ``retry_delay`` or the next wake) without holding back the others.
    - Woken in-process by every commit that stored events (``wake``, given to the unit of work
      as ``on_commit``): no polling delay; ``run`` first catches up with what the log holds.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        publishers: Mapping[str, EventPublisher],
        clock: Clock,
        settings: DispatchSettings | None = None,
    ) -> None:
        self.uow = uow
        self.publishers = dict(publishers)
        self.clock = clock
        self.settings = settings or DispatchSettings()
        self._cursors: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something was committed to the log: hand it out (safe to call at any time)."""
        self._wake.set()

    async def drain(self) -> set[str]:
        """Hand every stored event to each publisher that has not had it yet. Returns the
        names of the publishers that failed (they stop at the event that failed)."""
        failed: set[str] = set()
        async with self._lock:
            for name, publisher in self.publishers.items():
                try:
                    await self._drain_one(name, publisher)
                except Exception:
                    log.exception("publisher %s failed; retrying from its cursor", name)
                    failed.add(name)
        return failed

    async def _drain_one(self, name: str, publisher: EventPublisher) -> None:
        cursor = self._cursors.get(name)
        if cursor is None:
            async with self.uow() as uow:
                cursor = await uow.events.get_cursor(cursor_name(name))
            self._cursors[name] = cursor
        while True:
            async with self.uow() as uow:
                events = await uow.events.after(cursor, limit=self.settings.batch_size)
            if not events:
                return
            handed = cursor
            try:
                for event in events:
                    await publisher.publish(event)
                    handed = event.id
            finally:
                if handed != cursor:
                    await self._save_cursor(name, handed)
                    cursor = handed

    async def _save_cursor(self, name: str, event_id: int) -> None:
        async with self.uow() as uow:
            await uow.events.set_cursor(cursor_name(name), event_id)
            await uow.commit()
        self._cursors[name] = event_id

    async def run(self) -> None:
        """Until cancelled: catch up with the log, then hand out what each wake brings."""
        while True:
            self._wake.clear()
            failed = await self.drain()
            if failed:
                retry = asyncio.ensure_future(self.clock.sleep(self.settings.retry_delay))
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({retry, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    retry.cancel()
                    woken.cancel()
            else:
                await self._wake.wait()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="whatsgate:dispatcher")

    async def stop(self) -> None:
        """Stop the loop after handing out what is stored."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.drain()
