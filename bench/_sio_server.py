"""The socket.io servers the realtime benchmarks talk to, each its own process (uvicorn).

Every mode prints ``READY <json>`` on stdout once it listens; the JSON names what a client
needs (session ids, token).

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


TOKEN = "bench-token"


async def _whatsgate(data_dir: str, sessions: int) -> tuple[Any, Any, list[str], Any]:
    """whatsgate's realtime side on SQLite: RealtimeServer, SocketIOPublisher, the
    EventDispatcher woken by each commit, and ProcessIncomingMessage. Returns the
    RealtimeServer, the dispatcher, the session ids and the ingest use case."""
    from pathlib import Path

    from bench._fixtures import sqlite_url
    from whatsgate.adapters.clock import SystemClock
    from whatsgate.adapters.socketio import RealtimeServer, SocketIOPublisher
    from whatsgate.adapters.sql.database import create_engine_for
    from whatsgate.adapters.sql.migrations import migrate
    from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
    from whatsgate.domain.auth import Principal
    from whatsgate.domain.organization import Organization, Role, User
    from whatsgate.domain.session import Session
    from whatsgate.usecases.dispatch import EventDispatcher
    from whatsgate.usecases.ingest import ProcessIncomingMessage

    url = sqlite_url(Path(data_dir) / "whatsgate.db")
    await migrate(url)
    engine = create_engine_for(url)
    holder: dict[str, Any] = {}
    uow = SqlUnitOfWorkFactory(engine, on_commit=lambda events: holder["dispatcher"].wake(events))
    clock = SystemClock()
    at = clock.now()
    organization = Organization(name="bench", created_at=at)
    user = User(organization_id=organization.id, name="admin", role=Role.ADMIN, created_at=at)
    ids = []
    async with uow() as unit:
        await unit.organizations.add(organization)
        await unit.users.add(user)
        for i in range(sessions):
            session = Session(
                organization_id=organization.id, owner_id=user.id, name=f"s{i}", created_at=at
            )
            await unit.sessions.add(session)
            ids.append(session.id)
        await unit.commit()
    principal = Principal(user_id=user.id, organization_id=organization.id, role=Role.ADMIN)

    async def authenticate(token: str) -> Principal:
        if token != TOKEN:
            from whatsgate.domain.errors import NotAuthenticated

            raise NotAuthenticated("Unknown token.")
        return principal

    realtime = RealtimeServer(authenticate, uow)
    dispatcher = EventDispatcher(uow, {"socketio": SocketIOPublisher(realtime.sio)}, clock)
    holder["dispatcher"] = dispatcher
    ingest = ProcessIncomingMessage(uow, clock)
    return realtime, dispatcher, ids, ingest


async def ingest_app(data_dir: str, sessions: int) -> tuple[Any, dict[str, Any]]:
    """whatsgate's inbound path to socket.io. ``go {count, rate}``: ``count`` engine messages,
    ``rate`` per second in all, spread round-robin over the sessions; each session hands its
    messages to ingest one after the other (an engine awaits its listener), as neonize and the
    sandbox do. Each message's text starts with ``t=<monotonic_ns>`` taken when it arrives."""
    from bench._fixtures import incoming

    realtime, dispatcher, ids, ingest = await _whatsgate(data_dir, sessions)
    from whatsgate.usecases.ingest import IncomingMessageCommand

    @realtime.sio.on("go")
    async def go(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        count, rate = int(data["count"]), float(data.get("rate", 0))
        dispatcher.start()
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in ids]

        async def engine_session(index: int) -> None:
            queue = queues[index]
            while True:
                message = await queue.get()
                if message is None:
                    return
                await ingest(IncomingMessageCommand(session_id=ids[index], message=message))

        async def arrive(i: int) -> None:
            stamp = f"t={time.monotonic_ns()} "
            message = incoming(i, count, 50, text=stamp + "hello there, how are you today?")
            queues[i % len(ids)].put_nowait(message)

        async def run() -> None:
            workers = [asyncio.create_task(engine_session(k)) for k in range(len(ids))]
            await paced(count, rate, arrive)
            for queue in queues:
                queue.put_nowait(None)
            await asyncio.gather(*workers)

        asyncio.get_running_loop().create_task(run())
        return {"ok": True}

    return realtime.asgi_app(), {"sessions": ids, "token": TOKEN}


async def fanout_app(data_dir: str) -> tuple[Any, dict[str, Any]]:
    """whatsgate's socket.io server and publisher. ``go {count, size}``: ``count`` stored
    events of the session published back to back through ``SocketIOPublisher`` (the replay
    gate screening each emit), each ``data.t`` stamped with its emit time."""
    from whatsgate.adapters.socketio import SocketIOPublisher
    from whatsgate.domain.events import StoredEvent

    realtime, _dispatcher, ids, _ingest = await _whatsgate(data_dir, 1)
    publisher = SocketIOPublisher(realtime.sio)

    @realtime.sio.on("go")
    async def go(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        size = int(data.get("size", 800))
        from datetime import UTC, datetime

        async def emit(i: int) -> None:
            body = payload(i, size)["data"]
            body["t"] = time.monotonic_ns()
            event = StoredEvent(
                id=i + 1,
                name="message.new",
                organization_id="bench",
                session_id=ids[0],
                occurred_at=datetime.now(UTC),
                data=body,
            )
            await publisher.publish(event)

        asyncio.get_running_loop().create_task(paced(int(data["count"]), 0, emit))
        return {"ok": True}

    return realtime.asgi_app(), {"sessions": ids, "token": TOKEN}


class Deferred:
    """An ASGI app built by ``build()`` at lifespan start-up, in the server's own event loop
    (database connections and tasks belong to that loop); prints ``READY <json>`` then."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.inner: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import json

        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.inner, info = await self.build()
                    print("READY " + json.dumps(info), flush=True)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.inner(scope, receive, send)


def _main() -> None:
    import tempfile

    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["ref", "ingest", "fanout"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wg-bench-sio-") as data_dir:
        if args.mode == "ref":

            async def build() -> tuple[Any, dict[str, Any]]:
                return reference_app(), {}

        elif args.mode == "ingest":

            async def build() -> tuple[Any, dict[str, Any]]:
                return await ingest_app(data_dir, args.sessions)

        else:

            async def build() -> tuple[Any, dict[str, Any]]:
                return await fanout_app(data_dir)

        uvicorn.run(
            Deferred(build), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
        )


if __name__ == "__main__":
    _main()
