"""The event dispatcher: from the event log to the publishers (socket.io, webhooks)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from whatsgate.domain.events import StoredEvent
from whatsgate.ports.clock import Clock
from whatsgate.ports.publisher import EventPublisher
from whatsgate.ports.repositories import UnitOfWorkFactory

log = logging.getLogger("whatsgate.dispatch")


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchSettings:
    #: Events read from the log at a time, when catching up.
    batch_size: int = 100
    #: A publisher that failed is tried again after this many seconds (or at the next wake).
    retry_delay: float = 1.0
    #: A publisher's cursor is saved once this many events were handed to it since the last
    #: save, or ``cursor_interval`` seconds after the first of them, whichever comes first
    #: (and when the dispatcher stops): what a crash may hand out a second time.
    cursor_every: int = 1_000
    cursor_interval: float = 1.0
    #: Committed events kept in memory for publishers that lag behind; past this, the oldest
    #: are dropped and read back from the log when their turn comes.
    max_pending: int = 10_000


def cursor_name(publisher: str) -> str:
    return f"publisher:{publisher}"


class EventDispatcher:
    """Hands every stored event to every publisher, once each, in log order.

    - Only stored events are handed out: events are written by the unit of work that made the
      change, and handed over only once it committed. Each commit gives the dispatcher the
      events it stored, with the ids the log assigned (``wake(events)``); they are handed out
      from memory when they follow a publisher's cursor without a gap. The log is read to
      catch up: at start, after a gap (events of another process, a commit told out of order),
      after a failure, and on a wake that does not say what was stored.
    - Each publisher has its own cursor in the log (``publisher:<name>``), saved at most every
      ``cursor_every`` events or ``cursor_interval`` seconds, and when the dispatcher stops: a
      restart resumes where it stopped. At least once: a crash hands out again what followed
      the last saved cursor (at most that many events or seconds); the event id lets
      consumers tell.
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
        #: How far each publisher has been handed the log, and how far that is saved.
        self._cursors: dict[str, int] = {}
        self._saved: dict[str, int] = {}
        #: Events handed to a publisher since its cursor was last saved.
        self._unsaved = 0
        self._unsaved_since: datetime | None = None
        #: Committed events not yet handed to every publisher, in id order; ids alongside.
        self._pending: list[StoredEvent] = []
        self._pending_ids: list[int] = []
        #: The log may hold events that ``_pending`` does not: read it at the next pass.
        self._stale = True
        self._wake = asyncio.Event()
        #: The pending wake-up that saves the cursors or retries; set when it went off.
        self._alarm: asyncio.Future[None] | None = None
        self._rang = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def wake(self, events: Sequence[StoredEvent] = ()) -> None:
        """Something was committed to the log (``events``, as stored, when the caller knows
        them): hand it out. Safe to call at any time."""
        if events:
            self._remember(events)
        else:
            self._stale = True
        self._wake.set()

    def _remember(self, events: Sequence[StoredEvent]) -> None:
        pending, ids = self._pending, self._pending_ids
        if not ids or events[0].id > ids[-1]:
            pending.extend(events)
            ids.extend(e.id for e in events)
        else:  # told out of order (concurrent commits): keep them sorted
            pending.extend(events)
            pending.sort(key=lambda e: e.id)
            ids[:] = [e.id for e in pending]
        excess = len(pending) - self.settings.max_pending
        if excess > 0:  # a publisher lags far behind: it reads these from the log
            del pending[:excess]
            del ids[:excess]

    async def drain(self) -> set[str]:
        """Hand every stored event to each publisher that has not had it yet, reading the log,
        and save the cursors. Returns the names of the publishers that failed (they stop at
        the event that failed)."""
        self._stale = True
        failed = await self._pass()
        await self._save_cursors()
        return failed

    async def _pass(self) -> set[str]:
        failed: set[str] = set()
        async with self._lock:
            read_log, self._stale = self._stale, False
            for name, publisher in self.publishers.items():
                try:
                    await self._drain_one(name, publisher, read_log)
                except Exception:
                    log.exception("publisher %s failed; retrying from its cursor", name)
                    failed.add(name)
            if failed:
                self._stale = True
            self._forget_handed()
        return failed

    async def _drain_one(self, name: str, publisher: EventPublisher, read_log: bool) -> None:
        cursor = self._cursors.get(name)
        if cursor is None:
            async with self.uow() as uow:
                cursor = await uow.events.get_cursor(cursor_name(name))
            self._cursors[name] = self._saved[name] = cursor
        while True:
            events = self._following(cursor)
            if not events:
                if not read_log and not self._gap_after(cursor):
                    return
                async with self.uow() as uow:
                    events = await uow.events.after(cursor, limit=self.settings.batch_size)
                if not events:
                    return
            for event in events:
                await publisher.publish(event)
                cursor = self._cursors[name] = event.id
                self._unsaved += 1
                if self._unsaved_since is None:
                    self._unsaved_since = self.clock.now()

    def _following(self, cursor: int) -> list[StoredEvent]:
        """The pending events that follow ``cursor`` without a gap (none if the next one is
        not ``cursor + 1``)."""
        ids = self._pending_ids
        start = bisect.bisect_right(ids, cursor)
        if start == len(ids) or ids[start] != cursor + 1:
            return []
        end = start + 1
        while end < len(ids) and ids[end] == ids[end - 1] + 1:
            end += 1
        return self._pending[start:end]

    def _gap_after(self, cursor: int) -> bool:
        """Pending events beyond ``cursor`` that do not follow it: the log holds what is
        between (or it was deleted)."""
        return bool(self._pending_ids) and self._pending_ids[-1] > cursor

    def _forget_handed(self) -> None:
        """Drop the pending events every publisher has had."""
        if not self._pending_ids:
            return
        low = min((self._cursors.get(name, 0) for name in self.publishers), default=0)
        if self._pending_ids[-1] <= low:
            self._pending.clear()
            self._pending_ids.clear()
            return
        handed = bisect.bisect_right(self._pending_ids, low)
        if handed:
            del self._pending[:handed]
            del self._pending_ids[:handed]

    def _cursors_due(self) -> float | None:
        """Seconds until the cursors must be saved (0: now), or None when they are saved."""
        if self._unsaved_since is None:
            return None
        if self._unsaved >= self.settings.cursor_every:
            return 0.0
        elapsed = (self.clock.now() - self._unsaved_since).total_seconds()
        return max(0.0, self.settings.cursor_interval - elapsed)

    async def _save_cursors(self) -> None:
        changed = {n: c for n, c in self._cursors.items() if self._saved.get(n) != c}
        self._unsaved, self._unsaved_since = 0, None
        if not changed:
            return
        async with self.uow() as uow:
            for name, event_id in changed.items():
                await uow.events.set_cursor(cursor_name(name), event_id)
            await uow.commit()
        self._saved.update(changed)

    async def run(self) -> None:
        """Until cancelled: catch up with the log, then hand out what each wake brings."""
        try:
            while True:
                self._wake.clear()
                failed = await self._pass()
                due = self._cursors_due()
                if failed or due == 0.0 or (self._rang and not failed):
                    await self._save_cursors()
                    due = self.settings.retry_delay if failed else None
                self._rang = False
                if self._wake.is_set():
                    continue
                if due is not None and self._alarm is None:
                    # One alarm at a time, kept across wakes: a wake per commit need not
                    # set up and tear down a timer.
                    self._alarm = asyncio.ensure_future(self._ring(due))
                await self._wake.wait()
        finally:
            if self._alarm is not None:
                self._alarm.cancel()
                self._alarm = None

    async def _ring(self, delay: float) -> None:
        """After ``delay``: wake the loop to save the cursors (or retry a publisher)."""
        try:
            await self.clock.sleep(delay)
        finally:
            self._alarm = None
        self._rang = True
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stale = True
            self._task = asyncio.create_task(self.run(), name="whatsgate:dispatcher")

    async def stop(self) -> None:
        """Stop the loop after handing out what is stored, and save the cursors."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.drain()
