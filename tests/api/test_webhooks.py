"""Webhooks over HTTP: managed by admins, delivered by the worker, logged, counted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from litestar.testing import AsyncTestClient

from whatsgate.adapters.memory import MemoryStore
from whatsgate.testing import FakeEngine, FakeWebhookSender

from .conftest import ADMIN_KEY, Api, make_app, new_tenant, new_user

URL = "https://hooks.example.com/whatsgate"


async def test_webhooks_are_managed_by_admins_of_their_organization(api: Api) -> None:
    r = await api.call(
        "POST", "/api/v1/webhooks", json={"url": URL, "events": ["message.new"], "secret": "s" * 20}
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    assert (hook["url"], hook["events"], hook["signed"]) == (URL, ["message.new"], True)
    assert "secret" not in hook
    listed = (await api.call("GET", "/api/v1/webhooks")).json()["items"]
    assert [w["id"] for w in listed] == [hook["id"]]

    private = await api.call("POST", "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x"})
    assert private.status_code == 422
    unknown_event = await api.call("POST", "/api/v1/webhooks", json={"url": URL, "events": ["x"]})
    assert unknown_event.status_code == 422

    _, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    assert (await api.call("GET", "/api/v1/webhooks", key=agent_key)).status_code == 403
    globex = await new_tenant(api, "Globex")
    for method, path in (
        ("GET", f"/api/v1/webhooks/{hook['id']}"),
        ("DELETE", f"/api/v1/webhooks/{hook['id']}"),
        ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries"),
    ):
        r = await api.call(method, path, key=globex.admin_key)
        assert r.status_code == 404, (method, path)
    assert (await api.call("GET", "/api/v1/webhooks", key=globex.admin_key)).json()["items"] == []

    rotated = await api.call(
        "POST", f"/api/v1/webhooks/{hook['id']}/secret", json={"secret": "t" * 20}
    )
    assert rotated.status_code == 201 and rotated.json()["signed"] is True
    gone = await api.call("DELETE", f"/api/v1/webhooks/{hook['id']}")
    assert gone.status_code == 204
    assert (await api.call("GET", f"/api/v1/webhooks/{hook['id']}")).status_code == 404


async def test_events_are_delivered_logged_and_failures_counted(
    tmp_path: Path, engine: FakeEngine, store: MemoryStore
) -> None:
    sender = FakeWebhookSender(500)  # the first attempt fails, retried later
    app = make_app(tmp_path, engine, store, webhooks=sender)
    async with AsyncTestClient(app) as client:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        hook = (
            await client.post(
                "/api/v1/webhooks",
                headers=auth,
                json={"url": URL, "events": ["session.status"], "secret": "s" * 20},
            )
        ).json()
        sid = (await client.post("/api/v1/sessions", headers=auth, json={"name": "s"})).json()["id"]
        await client.post(f"/api/v1/sessions/{sid}/start", headers=auth)
        async with asyncio.timeout(5):
            requests = await sender.wait_for(1)
        first = requests[0]
        body = json.loads(first.body)
        assert body["event"] == "session.status" and body["session_id"] == sid
        assert first.headers["X-Whatsgate-Event"] == "session.status"
        assert first.headers["X-Whatsgate-Delivery"] == body["id"]
        assert first.headers["X-Whatsgate-Signature"].startswith("t=")
        async with asyncio.timeout(10):  # until the failed attempt is logged (a busy machine)
            while True:
                log = (
                    await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth)
                ).json()
                attempted = [d for d in log["items"] if d["attempt_log"]]
                if any(d["last_status_code"] == 500 for d in attempted):
                    break
                await asyncio.sleep(0.01)
        failed = next(d for d in log["items"] if d["last_status_code"] == 500)
        assert failed["status"] == "pending" and failed["attempt_log"][0]["status_code"] == 500
        metrics = (await client.get("/metrics")).text.splitlines()
        assert "whatsgate_webhook_failures_total 1" in metrics
        bad = await client.get(
            f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth, params={"status": "x"}
        )
        assert bad.status_code == 422
