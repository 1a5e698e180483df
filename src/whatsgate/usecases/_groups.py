"""Callers waiting for a group's unit of work (the group commits of live ingest and
``SendMessage``, the outbox's records): each awaits a future that the group's writer
answers."""

from __future__ import annotations

import asyncio
from typing import Any


def fail_waiter(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail a waiting caller with ``exc``, unless it has its answer already or stopped
    waiting; a cancellation cancels it."""
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
