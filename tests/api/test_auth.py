"""Credentials, roles and tenancy over HTTP."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient

from whatsgate.adapters.memory import MemoryStore
from whatsgate.domain.auth import hash_api_key
from whatsgate.testing import FakeEngine

from .conftest import ADMIN_KEY, Api, make_app, new_session, new_tenant, new_user


async def test_missing_or_wrong_credentials_are_401(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer wg_nope"}, {"X-Api-Key": "nope"}):
        r = await api.call("GET", "/api/v1/sessions", key=None, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "not_authenticated"
        assert r.headers["www-authenticate"] == "Bearer"
    for path in ("/api/v1/users", "/api/v1/events", "/api/v1/whatsapp/qr"):
        assert (await api.call("GET", path, key=None)).status_code == 401


async def test_x_api_key_is_accepted(api: Api) -> None:
    r = await api.call("GET", "/api/v1/sessions", key=None, headers={"X-Api-Key": ADMIN_KEY})
    assert r.status_code == 200


async def test_keys_are_stored_hashed(api: Api) -> None:
    _, key = await new_user(api, ADMIN_KEY, "Bea")
    stored = list(api.store.api_keys.values())
    assert {k.key_hash for k in stored} >= {hash_api_key(key), hash_api_key(ADMIN_KEY)}
    assert all(key not in (k.key_hash, k.prefix) for k in stored)


async def test_bearer_tokens_act_as_the_caller_and_forgeries_fail(api: Api) -> None:
    _, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    issued = await api.call("POST", "/api/v1/auth/token", key=agent_key)
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert issued.json()["token_type"] == "bearer" and issued.json()["expires_at"].endswith("Z")
    own = await new_session(api, key=token, name="bea's")
    users = await api.call("GET", "/api/v1/users")
    bea = next(u for u in users.json()["items"] if u["name"] == "Bea")
    assert own["owner_id"] == bea["id"]
    # An agent's token is no admin.
    assert (await api.call("GET", "/api/v1/users", key=token)).status_code == 403
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await api.call("GET", "/api/v1/sessions", key=forged)).status_code == 401


async def test_users_are_created_and_listed_by_admins_only(api: Api) -> None:
    r = await api.call(
        "POST", "/api/v1/users", json={"name": "Bea", "email": "bea@acme.test", "role": "agent"}
    )
    assert r.status_code == 201
    body = r.json()
    assert (body["role"], body["email"]) == ("agent", "bea@acme.test")
    assert body["api_key"].startswith("wg_")
    listed = (await api.call("GET", "/api/v1/users")).json()["items"]
    assert [u["name"] for u in listed] == ["admin", "Bea"]
    assert all("api_key" not in u for u in listed)

    dup = await api.call("POST", "/api/v1/users", json={"name": "B", "email": "BEA@acme.test"})
    assert dup.status_code == 409
    bad_role = await api.call("POST", "/api/v1/users", json={"name": "C", "role": "owner"})
    assert bad_role.status_code == 422
    bad_email = await api.call("POST", "/api/v1/users", json={"name": "C", "email": "nope"})
    assert bad_email.status_code == 422

    agent = await api.call("POST", "/api/v1/users", key=body["api_key"], json={"name": "X"})
    assert agent.status_code == 403 and agent.json()["error"]["code"] == "permission_denied"

    second = await api.call("POST", f"/api/v1/users/{body['id']}/api-keys", json={"name": "ci"})
    assert second.status_code == 201 and second.json()["name"] == "ci"
    new_key = second.json()["api_key"]
    assert new_key != body["api_key"]
    assert (await api.call("GET", "/api/v1/sessions", key=new_key)).status_code == 200
    by_agent = await api.call(
        "POST", f"/api/v1/users/{body['id']}/api-keys", key=body["api_key"], json={}
    )
    assert by_agent.status_code == 403
    unknown = await api.call("POST", "/api/v1/users/nobody/api-keys", json={})
    assert unknown.status_code == 403


async def test_only_the_operator_creates_organizations(api: Api) -> None:
    tenant = await new_tenant(api, "Globex")
    assert tenant.admin_key.startswith("wg_")
    again = await api.call("POST", "/api/v1/organizations", json={"name": "Globex"})
    assert again.status_code == 409
    by_other_admin = await api.call(
        "POST", "/api/v1/organizations", key=tenant.admin_key, json={"name": "Initech"}
    )
    assert by_other_admin.status_code == 403
    _, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    by_agent = await api.call(
        "POST", "/api/v1/organizations", key=agent_key, json={"name": "Initech"}
    )
    assert by_agent.status_code == 403


async def test_nothing_of_one_organization_is_visible_or_writable_from_another(api: Api) -> None:
    globex = await new_tenant(api, "Globex")
    ours = await new_session(api, name="sales")
    theirs = await new_session(api, key=globex.admin_key, name="sales")  # same name: fine

    mine = (await api.call("GET", "/api/v1/sessions", key=globex.admin_key)).json()["items"]
    assert [s["id"] for s in mine] == [theirs["id"]]
    sid = ours["id"]
    attempts = [
        ("GET", f"/api/v1/sessions/{sid}", None),
        ("PATCH", f"/api/v1/sessions/{sid}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/sessions/{sid}", None),
        ("POST", f"/api/v1/sessions/{sid}/start", None),
        ("POST", f"/api/v1/sessions/{sid}/stop", None),
        ("POST", f"/api/v1/sessions/{sid}/logout", None),
        ("GET", f"/api/v1/sessions/{sid}/qr", None),
        ("POST", f"/api/v1/sessions/{sid}/pairing-code", {"phone": "+5566996285154"}),
        ("GET", "/api/v1/events", None),
    ]
    for method, path, body in attempts:
        params = {"session_id": sid} if path == "/api/v1/events" else None
        r = await api.call(method, path, key=globex.admin_key, json=body, params=params)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "session_not_found"
    # Nothing changed: never started, not renamed, not deleted.
    stored = api.store.sessions[sid]
    assert (stored.name, stored.status, stored.desired_running) == ("sales", "stopped", False)
    assert not api.engine.opens_of(sid)
    users = (await api.call("GET", "/api/v1/users", key=globex.admin_key)).json()["items"]
    assert {u["organization_id"] for u in users} == {globex.organization_id}
    # Sharing with a user of another organization is refused.
    shared = await api.call(
        "PATCH", f"/api/v1/sessions/{sid}", json={"shared_with": [globex.agent_id]}
    )
    assert shared.status_code == 422


async def test_agents_see_only_sessions_shared_with_them(api: Api) -> None:
    agent_id, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    sid = (await new_session(api))["id"]
    assert (await api.call("GET", "/api/v1/sessions", key=agent_key)).json()["items"] == []
    for method, path in (
        ("GET", f"/api/v1/sessions/{sid}"),
        ("POST", f"/api/v1/sessions/{sid}/start"),
        ("GET", f"/api/v1/sessions/{sid}/qr"),
    ):
        r = await api.call(method, path, key=agent_key)
        assert r.status_code == 403, (method, path)
        assert r.json()["error"]["code"] == "permission_denied"
    assert not api.engine.opens_of(sid)

    shared = await api.call("PATCH", f"/api/v1/sessions/{sid}", json={"shared_with": [agent_id]})
    assert shared.status_code == 200 and shared.json()["shared_with"] == [agent_id]
    seen = (await api.call("GET", "/api/v1/sessions", key=agent_key)).json()["items"]
    assert [s["id"] for s in seen] == [sid]
    assert (await api.call("GET", f"/api/v1/sessions/{sid}/qr", key=agent_key)).status_code == 200
    # Using is not owning: no rename, no logout, no delete.
    for method, path, body in (
        ("PATCH", f"/api/v1/sessions/{sid}", {"name": "mine"}),
        ("POST", f"/api/v1/sessions/{sid}/logout", None),
        ("DELETE", f"/api/v1/sessions/{sid}", None),
    ):
        r = await api.call(method, path, key=agent_key, json=body)
        assert r.status_code == 403, (method, path)
    assert sid in api.store.sessions


async def test_first_start_without_a_chosen_key_makes_one_and_announces_it_once(
    tmp_path: Path, engine: FakeEngine, store: MemoryStore
) -> None:
    said: list[str] = []
    app = make_app(tmp_path, engine, store, announce=said.append, admin_api_key=None)
    async with AsyncTestClient(app) as client:
        assert len(said) == 1
        key = said[0].rsplit(" ", 1)[-1]
        r = await client.get("/api/v1/users", headers={"X-Api-Key": key})
        assert r.status_code == 200 and [u["role"] for u in r.json()["items"]] == ["admin"]
        token = await client.post(
            "/api/v1/organizations", headers={"X-Api-Key": key}, json={"name": "Globex"}
        )
        assert token.status_code == 201
    again = make_app(tmp_path, engine, store, announce=said.append, admin_api_key=None)
    async with AsyncTestClient(again) as client:
        assert len(said) == 1  # a second start shows nothing new
        assert (await client.get("/api/v1/users", headers={"X-Api-Key": key})).status_code == 200
