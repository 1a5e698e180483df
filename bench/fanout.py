"""Fan-out: deliveries/s to 100 websocket clients subscribed to one session, against a raw
python-socketio broadcast to the same clients.

Reference: a plain python-socketio server (uvicorn, own process) emitting ``count``
``message.new`` envelopes back to back to one room holding every client.

Measured: whatsgate's socket.io server and publisher, ``count`` stored events of one session
published to the clients subscribed to that session.

Deliveries/s = clients x count / (last reception - first emit). All clients live in this
process (python-socketio AsyncClient over websocket), the server in another; on 2 cores the
clients' own cost caps both figures alike.

Target: ≥ 0.5x the reference.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench._fixtures import missing, start_server, stop
from bench._harness import Results, cli, default_runs, finish, repeat
from bench._sio_clients import TimedClient, wait_all

NAME = "fanout"
SIZE = 870
MEASURED = ("whatsgate.adapters.socketio",)


def _stamp(data: Any) -> int | None:
    return int(data["t"]) if isinstance(data, dict) and "t" in data else None


def _rate(clients: list[TimedClient], count: int) -> float:
    first = min(c.first_sent_ns for c in clients if c.first_sent_ns is not None)
    last = max(c.last_received_ns for c in clients)
    return len(clients) * count / ((last - first) / 1e9)


async def _reference(port: int, n_clients: int, count: int) -> dict[str, float]:
    clients = [TimedClient(_stamp) for _ in range(n_clients)]
    try:
        await asyncio.gather(*(c.connect(port) for c in clients))
        await asyncio.gather(*(c.call("subscribe", {}) for c in clients))
        for c in clients:
            c.expect(count)
        await clients[0].call("go", {"count": count, "rate": 0, "size": SIZE})
        await wait_all(clients, wait_s=120)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {"ref_deliveries_per_s": _rate(clients, count)}


def reference(n_clients: int, count: int) -> dict[str, float]:
    server, port, _ = start_server("bench._sio_server", "ref")
    try:
        return asyncio.run(_reference(port, n_clients, count))
    finally:
        stop(server)


def _data_stamp(data: Any) -> int | None:
    try:
        return int(data["data"]["t"])
    except (KeyError, TypeError, ValueError):
        return None


async def _measured(port: int, info: dict[str, Any], n_clients: int, count: int) -> float:
    clients = [TimedClient(_data_stamp) for _ in range(n_clients)]
    session = {"session_id": info["sessions"][0]}
    try:
        auth = {"token": info["token"]}
        await asyncio.gather(*(c.connect(port, auth=auth) for c in clients))
        answers = await asyncio.gather(*(c.call("subscribe", session) for c in clients))
        if not all(a.get("ok") for a in answers):
            raise RuntimeError(f"subscribe refused: {answers[0]}")
        for c in clients:
            c.expect(count)
        await clients[0].call("go", {"count": count, "size": SIZE})
        await wait_all(clients, wait_s=120)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return _rate(clients, count)


def measured(n_clients: int, count: int) -> dict[str, float]:
    server, port, info = start_server("bench._sio_server", "fanout")
    try:
        return {"deliveries_per_s": asyncio.run(_measured(port, info, n_clients, count))}
    finally:
        stop(server)


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    n_clients, count = (5, 20) if quick else (100, 200)
    runs = default_runs(quick, runs)
    why_not = missing(*MEASURED)
    results = Results(
        NAME, quick, runs, params={"clients": n_clients, "events": count, "payload_bytes": SIZE}
    )

    def once() -> dict[str, float]:
        figures = reference(n_clients, count)
        if why_not is None:
            figures.update(measured(n_clients, count))
        return figures

    collected = repeat(runs, once)
    for metric, values in collected.items():
        results.add(metric, "/s", values)
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    ratio = results.ratio("ratio", "deliveries_per_s", "ref_deliveries_per_s")
    results.check(">= 0.5x the reference", ratio, ratio >= 0.5)
    return finish(results)


if __name__ == "__main__":
    cli(main)
