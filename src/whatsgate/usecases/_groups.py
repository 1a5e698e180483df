"""Callers waiting for a group's unit of work (the group commits of live ingest and
``SendMessage``, the outbox's records): each awaits a future that the group's writer
answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar


def fail_waiter(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail a waiting caller with ``exc``, unless it has its answer already or stopped
    waiting; a cancellation cancels it."""
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)


class Waiter(Protocol):
    @property
    def future(self) -> asyncio.Future[Any]: ...


W = TypeVar("W", bound=Waiter)


class Groups(Generic[W]):
    """What callers hand over, written a group at a time by one writer task.

    The first caller starts the writer; it hands what waits to ``write`` (at most
    ``max_group`` at a time) until nothing does, letting the loop run between groups, so that
    what arrives while a group is written forms the next. ``write`` answers each item's
    future; if the writer itself fails or is cancelled, every item still waiting fails with
    it. ``before`` (if any) is awaited once before the first group (a group window)."""

    def __init__(
        self,
        write: Callable[[list[W]], Awaitable[None]],
        *,
        max_group: int,
        name: str,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.write = write
        self.max_group = max_group
        self.name = name
        self.before = before
        self._waiting: list[W] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def writer(self) -> asyncio.Task[None] | None:
        """The writer task while one runs (or is about to)."""
        return self._writer

    def submit(self, item: W) -> None:
        self._waiting.append(item)
        # A writer cancelled before it ran (its event loop shut down) never cleared itself.
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        group: list[W] = []
        try:
            if self.before is not None:
                await self.before()
            while self._waiting:
                group = self._waiting[: self.max_group]
                del self._waiting[: len(group)]
                await self.write(group)
                group = []
                # Let the callers just answered run: what they hand over next (an engine's
                # next message of the session, a client's next send) belongs in the next group.
                await asyncio.sleep(0)
        except BaseException as exc:
            for item in (*group, *self._waiting):
                fail_waiter(item.future, exc)
            self._waiting.clear()
            raise
        finally:
            self._writer = None
