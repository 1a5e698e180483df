"""The socket.io servers the realtime benchmarks talk to, each its own process (uvicorn).

``python -m bench._sio_server ref --port P``: plain python-socketio, no whatsgate. A client
emits ``subscribe`` (joins room ``bench``), then ``go`` with ``{count, rate, size}``; the server
emits ``count`` ``message.new`` events of about ``size`` bytes to the room, ``rate`` per second
(0: as fast as it can), each stamped with ``t``, the server's ``time.monotonic_ns()`` when it
was emitted. The clock is the machine's monotonic clock, shared by every process.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

ROOM = "bench"


def payload(i: int, size: int) -> dict[str, Any]:
    """An event envelope shaped like whatsgate's ``message.new``, about ``size`` bytes."""
    body = {
        "id": str(i),
        "event": "message.new",
        "session_id": "01JBENCH000000000000000000",
        "timestamp": "2026-11-22T10:00:00.000000+00:00",
        "data": {
            "id": "01JBENCH000000000000000001",
            "chat": "5511900000001@s.whatsapp.net",
            "direction": "in",
            "type": "text",
            "status": "received",
            "text": "",
        },
    }
    body["data"]["text"] = "x" * max(0, size - 300)
    return body


async def paced(count: int, rate: float, emit: Any) -> None:
    """Call ``emit(i)`` ``count`` times, ``rate`` per second on an absolute schedule (no
    drift), or back to back when ``rate`` is 0."""
    start = time.perf_counter()
    for i in range(count):
        if rate > 0:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await emit(i)


def reference_app() -> Any:
    import socketio

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])

    @sio.on("subscribe")
    async def subscribe(sid: str, data: Any = None) -> dict[str, bool]:
        await sio.enter_room(sid, ROOM)
        return {"ok": True}

    @sio.on("go")
    async def go(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        size = int(data.get("size", 800))

        async def emit(i: int) -> None:
            body = payload(i, size)
            body["t"] = time.monotonic_ns()
            await sio.emit("message.new", body, room=ROOM)

        asyncio.get_running_loop().create_task(
            paced(int(data["count"]), float(data.get("rate", 0)), emit)
        )
        return {"ok": True}

    return socketio.ASGIApp(sio)


def _main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["ref"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = reference_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    _main()
