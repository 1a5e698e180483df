"""Loading neonize, and the process-wide guards its Go runtime needs.

Importing this module imports neonize (~0.5 s, a Go runtime, a log thread). It is only imported
by the neonize adapter's own modules, which are only imported when the neonize engine is
chosen. What it contains:

- ``neonize``'s import forces the root logger to INFO with its own handler
  (``logging.basicConfig``); we put the application's logging back as it was.
- The Go runtime is not fork-safe: a process forked after the import cannot use it, so the
  engine refuses to start there (``ensure_not_forked``) instead of hanging.
- neonize keeps every client in unlocked Go maps written by connect and stop and read by every
  call: ``GATE`` is a process-wide readers-writer gate (lifecycle calls exclusive, other calls
  shared), usable from any event loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import warnings
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from whatsgate.domain.errors import EngineError


def _import_neonize() -> Any:
    # Some of neonize's dependencies leave files open at import: collect them here, quietly.
    with warnings.catch_warnings():
        return _import_neonize_quietly()


def _import_neonize_quietly() -> Any:
    root = logging.getLogger()
    level = root.level
    handlers = list(root.handlers)
    try:
        warnings.simplefilter("ignore", ResourceWarning)  # scoped by the caller's catch_warnings
        import neonize
        import neonize.aioze.client
        import neonize.aioze.events
        import neonize.builder
        import neonize.events
        import neonize.proto.Neonize_pb2
        import neonize.proto.waCommon.WACommon_pb2
        import neonize.proto.waE2E.WAWebProtobufsE2E_pb2
        import neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2
        import neonize.proto.waWeb.WAWebProtobufsWeb_pb2
        import neonize.utils.enum

        _reap_import_children()
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return neonize


def _reap_import_children() -> None:
    """neonize runs ``uname -a`` through ``os.popen`` at import and never closes it: wait for it
    and release its pipe now, instead of a ResourceWarning at some later subprocess call."""
    import subprocess

    for process in list(getattr(subprocess, "_active", None) or []):
        with suppress(Exception):
            process.wait(timeout=2)
    cleanup = getattr(subprocess, "_cleanup", None)
    if cleanup is not None:
        cleanup()
    gc.collect()


neonize = _import_neonize()

#: The parts of neonize the adapter uses (imported above, with logging kept intact).
npb: Any = neonize.proto.Neonize_pb2
e2e: Any = neonize.proto.waE2E.WAWebProtobufsE2E_pb2
hsync: Any = neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2
web: Any = neonize.proto.waWeb.WAWebProtobufsWeb_pb2
common: Any = neonize.proto.waCommon.WACommon_pb2
builder: Any = neonize.builder
events: Any = neonize.events
enums: Any = neonize.utils.enum
aioze_client: Any = neonize.aioze.client

_LOADED_IN_PID = os.getpid()


def ensure_not_forked() -> None:
    """neonize's Go runtime does not survive a fork: refuse clearly instead of hanging."""
    if os.getpid() != _LOADED_IN_PID:
        raise EngineError(
            "neonize was imported before this process was forked; its Go runtime cannot run "
            "here. Import the neonize engine only in the process that uses it."
        )


class ProcessGate:
    """A readers-writer gate shared by every event loop of the process.

    Writers (client start and stop) wait for readers to drain and keep new readers out while
    waiting, so a start is never starved by a stream of sends. Waiting writers queue in
    arrival order and each is handed the gate by whoever leaves it (``end_write``, the last
    reader), through its own loop: hundreds of starts waiting at once (a restore) cost
    nothing while they wait. Waiting polled every few milliseconds before, and 450 starts
    queued at a restore of 500 sessions took the event loop whole: each start then held
    the gate 13 ms instead of 4 (bench/neonize_sessions.py). Readers still poll briefly:
    they wait only while a writer holds or waits, and few calls come then.
    """

    def __init__(self, poll_seconds: float = 0.002) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._poll = poll_seconds
        #: Writers waiting, first come first served: each one's loop and future.
        self._queue: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    def _try_read(self) -> bool:
        with self._lock:
            if self._writer or self._writers_waiting:
                return False
            self._readers += 1
            return True

    def _end_read(self) -> None:
        with self._lock:
            self._readers -= 1
            self._hand_over()

    def end_write(self) -> None:
        with self._lock:
            self._writer = False
            self._hand_over()

    def _hand_over(self) -> None:
        """With the lock held: give the free gate to the first waiting writer, if any."""
        while self._queue and not self._writer and not self._readers:
            loop, future = self._queue.popleft()
            self._writer = True  # the waiter's from now on, even before its loop runs it
            try:
                loop.call_soon_threadsafe(self._grant, future)
            except RuntimeError:  # its loop is closed: nobody will take it
                self._writer = False

    def _grant(self, future: asyncio.Future[None]) -> None:
        """On the waiter's loop: wake it, or pass the gate on if it stopped waiting."""
        if future.done():  # cancelled meanwhile
            self.end_write()
        else:
            future.set_result(None)

    async def begin_write(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._writer and not self._readers and not self._queue:
                self._writer = True
                return
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append((loop, future))
            self._writers_waiting += 1
        try:
            await future
        except BaseException:
            with self._lock:
                if (loop, future) in self._queue:  # not handed over yet: leave the queue
                    self._queue.remove((loop, future))
                    handed = False
                else:
                    handed = future.done() and not future.cancelled()
            if handed:  # handed over, then cancelled before it ran: pass the gate on
                self.end_write()
            raise
        finally:
            with self._lock:
                self._writers_waiting -= 1

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        await self.begin_write()
        try:
            yield
        finally:
            self.end_write()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._try_read():  # noqa: ASYNC110 - shared across loops and threads
            await asyncio.sleep(self._poll)
        try:
            yield
        finally:
            self._end_read()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._writer or self._readers > 0


GATE = ProcessGate()


def reset_global_loop() -> None:
    """Forget neonize's module-global event loop (the first loop that connected wins).

    The adapter does not depend on it (it installs its own callbacks), but a stale closed loop
    there would break neonize's own helpers; tests call this between loops.
    """
    neonize.aioze.events.event_global_loop = None
