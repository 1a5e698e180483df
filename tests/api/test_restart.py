"""A restart: a new app over the same storage and device store restores the sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar.testing import AsyncTestClient

from whatsgate.adapters.memory import MemoryStore
from whatsgate.testing import FakeEngine

from .conftest import ADMIN_KEY, make_app

AUTH = {"X-Api-Key": ADMIN_KEY}


async def wait_for_status(client: AsyncTestClient, sid: str, status: str) -> dict[str, object]:  # type: ignore[type-arg]
    for _ in range(250):
        body: dict[str, object] = (await client.get(f"/api/v1/sessions/{sid}", headers=AUTH)).json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"session {sid} never became {status}: {body}")


async def test_a_new_app_over_the_same_storage_restores_running_sessions(
    tmp_path: Path, engine: FakeEngine, store: MemoryStore
) -> None:
    first = make_app(tmp_path, engine, store, engine="sandbox")
    async with AsyncTestClient(first) as client:
        paired = (await client.post("/api/v1/sessions", headers=AUTH, json={"name": "p"})).json()
        waiting = (await client.post("/api/v1/sessions", headers=AUTH, json={"name": "w"})).json()
        idle = (await client.post("/api/v1/sessions", headers=AUTH, json={"name": "i"})).json()
        await client.get(f"/api/v1/sessions/{paired['id']}/qr", headers=AUTH)
        await client.post(f"/api/v1/sandbox/sessions/{paired['id']}/scan", headers=AUTH, json={})
        await client.get(f"/api/v1/sessions/{waiting['id']}/qr", headers=AUTH)
        jid = (await wait_for_status(client, paired["id"], "connected"))["jid"]

    # Shut down: sessions rest as "stopped (shutdown)" but keep wanting to run.
    suspended = store.sessions[paired["id"]]
    assert (suspended.status, suspended.status_reason) == ("stopped", "shutdown")
    assert suspended.desired_running

    second = make_app(tmp_path, engine, store, engine="sandbox")
    async with AsyncTestClient(second) as client:
        restored = await wait_for_status(client, paired["id"], "connected")
        assert restored["jid"] == jid  # no QR: the device store was kept
        again = await wait_for_status(client, waiting["id"], "awaiting_scan")
        assert str(again["qr"]).startswith("2@")
        rest = (await client.get(f"/api/v1/sessions/{idle['id']}", headers=AUTH)).json()
        assert (rest["status"], rest["desired_running"]) == ("stopped", False)
