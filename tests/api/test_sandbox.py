"""The sandbox control endpoints, over the real SandboxEngine."""

from __future__ import annotations

import asyncio

from whatsgate.testing import settle

from .conftest import ADMIN_KEY, Api, new_session, new_user


async def test_scan_pairs_the_session(sandbox_api: Api) -> None:
    api = sandbox_api
    sid = (await new_session(api))["id"]
    qr = (await api.call("GET", f"/api/v1/sessions/{sid}/qr")).json()
    assert qr["status"] == "awaiting_scan" and qr["qr"].startswith("2@")
    r = await api.call(
        "POST", f"/api/v1/sandbox/sessions/{sid}/scan", json={"phone": "+55 11 98888-7777"}
    )
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["jid"]) == ("connected", "5511988887777@s.whatsapp.net")
    again = await api.call("POST", f"/api/v1/sandbox/sessions/{sid}/scan", json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_connected"


async def test_inbound_and_faults(sandbox_api: Api) -> None:
    api = sandbox_api
    sid = (await new_session(api))["id"]
    not_running = await api.call(
        "POST", f"/api/v1/sandbox/sessions/{sid}/inbound", json={"from": "+5511912345678"}
    )
    assert not_running.status_code == 409
    await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    await api.call("POST", f"/api/v1/sandbox/sessions/{sid}/scan", json={})
    sent = await api.call(
        "POST",
        f"/api/v1/sandbox/sessions/{sid}/inbound",
        json={"from": "+55 11 91234-5678", "text": "hello", "id": "ABC123"},
    )
    assert sent.status_code == 202 and sent.json() == {"id": "ABC123"}
    again = await api.call(
        "POST",
        f"/api/v1/sandbox/sessions/{sid}/inbound",
        json={"from": "+55 11 91234-5678", "text": "hello", "id": "ABC123"},
    )
    assert again.status_code == 202 and again.json() == {"id": "ABC123"}
    assert [m.wa_id for m in api.store.messages.values()] == ["ABC123"]  # de-duplicated
    conversations = (await api.call("GET", f"/api/v1/sessions/{sid}/conversations")).json()
    assert [c["unread_count"] for c in conversations["items"]] == [1]
    bad = await api.call(
        "POST", f"/api/v1/sandbox/sessions/{sid}/inbound", json={"from": "x", "text": "hi"}
    )
    assert bad.status_code == 422

    dropped = await api.call(
        "POST", f"/api/v1/sandbox/sessions/{sid}/faults", json={"disconnect": True}
    )
    assert dropped.status_code == 202 and dropped.json()["status"] == "reconnecting"
    logged_out = None
    for _ in range(200):  # the reconnect back-off is about a second, on the real clock
        await settle()
        status = (await api.call("GET", f"/api/v1/sessions/{sid}")).json()["status"]
        if status == "connected":
            logged_out = await api.call(
                "POST", f"/api/v1/sandbox/sessions/{sid}/faults", json={"logout": True}
            )
            break
        await asyncio.sleep(0.02)
    assert logged_out is not None, "the session did not reconnect"
    assert logged_out.json()["status"] == "logged_out"
    two = await api.call(
        "POST", f"/api/v1/sandbox/sessions/{sid}/faults", json={"logout": True, "replace": True}
    )
    assert two.status_code == 422


async def test_sandbox_endpoints_follow_tenancy(sandbox_api: Api) -> None:
    api = sandbox_api
    sid = (await new_session(api))["id"]
    _, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    r = await api.call("POST", f"/api/v1/sandbox/sessions/{sid}/scan", key=agent_key, json={})
    assert r.status_code == 403


async def test_sandbox_endpoints_exist_only_with_the_sandbox_engine(api: Api) -> None:
    sid = (await new_session(api))["id"]
    r = await api.call("POST", f"/api/v1/sandbox/sessions/{sid}/scan", json={})
    assert r.status_code == 404
