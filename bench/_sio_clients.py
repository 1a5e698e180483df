"""socket.io clients that time what they receive (python-socketio AsyncClient, websocket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class TimedClient:
    """One client: connects, subscribes, keeps the latency of every ``event`` it receives.

    ``stamp(data)`` returns the sender's ``time.monotonic_ns()`` carried by an event (None when
    the event is not one of the timed ones)."""

    def __init__(self, stamp: Callable[[Any], int | None], event: str = "message.new") -> None:
        import socketio

        self.client = socketio.AsyncClient(reconnection=False)
        self.stamp = stamp
        self.latencies_ns: list[int] = []
        self.first_sent_ns: int | None = None
        self.last_received_ns = 0
        self.expected = 0
        self.done = asyncio.Event()
        self.client.on(event, self._on_event)

    async def _on_event(self, data: Any) -> None:
        received = time.monotonic_ns()
        sent = self.stamp(data)
        if sent is None:
            return
        self.latencies_ns.append(received - sent)
        if self.first_sent_ns is None or sent < self.first_sent_ns:
            self.first_sent_ns = sent
        self.last_received_ns = received
        if self.expected and len(self.latencies_ns) >= self.expected:
            self.done.set()

    def expect(self, count: int) -> None:
        self.expected = count
        self.latencies_ns.clear()
        self.first_sent_ns = None
        self.done.clear()

    async def connect(self, port: int, auth: dict[str, Any] | None = None) -> None:
        await self.client.connect(
            f"http://127.0.0.1:{port}", transports=["websocket"], auth=auth, wait_timeout=10
        )

    async def call(self, event: str, data: Any = None, wait_s: float = 10) -> Any:
        return await self.client.call(event, data, timeout=wait_s)

    async def close(self) -> None:
        await self.client.disconnect()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def wait_all(clients: list[TimedClient], wait_s: float) -> None:
    await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), wait_s)
