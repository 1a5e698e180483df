"""``WhatsGate`` as a library user sees it, on memory storage and the FakeEngine."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from dependency_injector import providers

from whatsgate import Settings, WhatsGate
from whatsgate.adapters.clock import SystemClock
from whatsgate.adapters.memory import MemoryStore
from whatsgate.domain.events import StoredEvent
from whatsgate.entrypoints.container import build_container
from whatsgate.testing import FakeEngine


def opened(
    tmp_path: Path, engine: FakeEngine, store: MemoryStore
) -> AbstractAsyncContextManager[WhatsGate]:
    settings = Settings(database_url="memory://", data_dir=tmp_path, qr_wait_seconds=2)
    container = build_container(settings)
    container.engines.engine.override(providers.Object(engine))
    container.storage.memory.override(providers.Object(store))
    return WhatsGate.open(settings, container=container)


async def test_create_start_pair_send_and_stream_events(tmp_path: Path) -> None:
    engine, store = FakeEngine(SystemClock()), MemoryStore()
    async with opened(tmp_path, engine, store) as gate:
        seen: list[StoredEvent] = []
        stream = gate.events()
        first = asyncio.ensure_future(anext(stream))
        received: list[str] = []

        async def record(event: StoredEvent) -> None:
            received.append(event.name)

        gate.subscribe(record)
        await asyncio.sleep(0)
        session = await gate.create_session("sales", start=True)
        assert session.status == "awaiting_scan" and session.qr is not None
        seen.append(await asyncio.wait_for(first, 2))
        assert (seen[0].name, seen[0].data["status"]) == ("session.status", "starting")

        await engine.scan(session.id)
        assert (await gate.session(session.id)).status == "connected"
        message = await gate.send_text(session.id, "+55 66 99999-0001", "hello")
        for _ in range(200):
            if (await gate.message(message.id)).status == "sent":
                break
            await asyncio.sleep(0.01)
        assert (await gate.message(message.id)).status == "sent"
        assert [s.message.text for s in engine.sent] == ["hello"]

        names = [seen[0].name]
        while "message.status" not in names:
            names.append((await asyncio.wait_for(anext(stream), 2)).name)
        assert names == [
            "session.status",
            "session.status",
            "session.qr",
            "session.status",
            "message.new",
            "conversation.updated",
            "message.status",
        ]
        await asyncio.sleep(0.05)
        assert received == names
        await stream.aclose()

    # Closed: the session rests, wanting to run; the next open restores it without a QR.
    assert store.sessions[session.id].status == "stopped"
    async with opened(tmp_path, engine, store) as gate:
        for _ in range(200):
            if (await gate.session(session.id)).status == "connected":
                break
            await asyncio.sleep(0.01)
        assert (await gate.session(session.id)).status == "connected"
        assert [s.name for s in await gate.sessions()] == ["sales"]
