"""Ingest → socket.io: p50/p99 from an engine event to a subscribed python-socketio client,
at 500 msgs/s, against an emit of the same payload straight from python-socketio.

Reference: a plain python-socketio server (uvicorn, own process) emitting ``message.new``
envelopes of the same size to a room, 500 per second, each stamped with its emit time.

Measured: whatsgate's inbound path in a server process (uvicorn): an engine ``IncomingMessage``
stamped with its time of arrival goes through ``ProcessIncomingMessage`` (group commit, SQLite),
the event log, the ``EventDispatcher`` and the socket.io publisher to a client subscribed to the
session, 500 per second.

Latency = client's ``time.monotonic_ns()`` at reception minus the stamp (one machine, one
monotonic clock for every process). The client runs in this process, the server in another:
they share the 2 cores, in both paths.

Targets: p99 < 25 ms; p99 ≤ 4x the reference p99.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._fixtures import free_port, missing, spawn, stop, wait_port
from bench._harness import Results, cli, default_runs, finish, repeat
from bench._sio_clients import TimedClient, percentile

NAME = "ingest_socketio"
RATE = 500.0
SIZE = 800
MEASURED = (
    "whatsgate.adapters.sql.uow",
    "whatsgate.adapters.socketio",
    "whatsgate.usecases.ingest",
    "whatsgate.usecases.dispatch",
)


def _stamp(data: Any) -> int | None:
    return int(data["t"]) if isinstance(data, dict) and "t" in data else None


async def _reference(port: int, count: int) -> dict[str, float]:
    client = TimedClient(_stamp)
    await client.connect(port)
    try:
        await client.call("subscribe", {})
        client.expect(count)
        await client.call("go", {"count": count, "rate": RATE, "size": SIZE})
        await asyncio.wait_for(client.done.wait(), timeout=count / RATE + 30)
    finally:
        await client.close()
    ms = [v / 1e6 for v in client.latencies_ns]
    return {"ref_p50_ms": percentile(ms, 0.50), "ref_p99_ms": percentile(ms, 0.99)}


def reference(count: int) -> dict[str, float]:
    port = free_port()
    server = spawn("bench._sio_server", "ref", "--port", str(port))
    try:
        wait_port(port, process=server)
        return asyncio.run(_reference(port, count))
    finally:
        stop(server)


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    count = 100 if quick else 5_000
    runs = default_runs(quick, runs)
    why_not = missing(*MEASURED)
    results = Results(
        NAME, quick, runs, params={"messages": count, "rate_per_s": RATE, "payload_bytes": SIZE}
    )

    def once() -> dict[str, float]:
        return reference(count)

    collected = repeat(runs, once)
    for metric, values in collected.items():
        results.add(metric, "ms", values)
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    return finish(results)


if __name__ == "__main__":
    cli(main)
