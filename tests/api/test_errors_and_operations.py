"""One error format for every client mistake; health, metrics, events, the OpenAPI document."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from whatsgate.adapters.memory import MemoryStore
from whatsgate.entrypoints.app import RUNTIME
from whatsgate.testing import FakeEngine, settle
from whatsgate.usecases.health import Health, ReadHealth

from .conftest import ADMIN_KEY, Api, make_app, new_session, new_user


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def test_unknown_route_is_404_in_the_error_format(api: Api) -> None:
    r = await api.call("GET", "/api/v1/nothing-here")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


async def test_wrong_method_is_405_in_the_error_format(api: Api) -> None:
    r = await api.call("PUT", "/api/v1/sessions")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


async def test_malformed_json_is_400(api: Api) -> None:
    r = await api.call(
        "POST",
        "/api/v1/sessions",
        content=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and error_of(r)["code"] == "malformed_json"


async def test_invalid_fields_are_422_with_details(api: Api) -> None:
    for body in ({}, {"name": ""}, {"name": 5}, {"name": "x" * 101}, {"name": "a", "extra": 1}):
        r = await api.call("POST", "/api/v1/sessions", json=body)
        assert r.status_code == 422, body
        error = error_of(r)
        assert error["code"] == "invalid_input"
        assert error["details"]["fields"] and error["details"]["fields"][0]["message"]
    assert api.store.sessions == {}


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = await api.call(
        "POST", "/api/v1/sessions", content=huge, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"


async def test_health_needs_no_auth_and_counts_sessions_by_status(api: Api) -> None:
    await new_session(api, name="a")
    sid = (await new_session(api, name="b"))["id"]
    await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    r = await api.call("GET", "/health", key=None)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["sessions"]["stopped"] == 1 and body["sessions"]["awaiting_scan"] == 1
    assert set(body["sessions"]) >= {"connected", "failed", "logged_out"}


async def test_metrics_are_prometheus_text(api: Api) -> None:
    sid = (await new_session(api))["id"]
    await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    await api.engine.scan(sid)
    r = await api.call("GET", "/metrics", key=None)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert 'whatsgate_sessions{status="connected"} 1' in lines
    assert 'whatsgate_messages_total{direction="in"} 0' in lines
    assert "whatsgate_outbox_depth 0" in lines
    assert "# TYPE whatsgate_send_latency_seconds histogram" in lines
    assert 'whatsgate_send_latency_seconds_bucket{le="+Inf"} 0' in lines
    assert "whatsgate_webhook_failures_total 0" in lines
    for line in lines:
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


async def test_events_replay_what_was_missed_oldest_first(api: Api) -> None:
    sid = (await new_session(api))["id"]
    await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    await api.engine.scan(sid)
    await settle()
    everything = (await api.call("GET", "/api/v1/events")).json()
    names = [e["event"] for e in everything["items"]]
    assert names == ["session.status", "session.status", "session.qr", "session.status"]
    assert everything["next_cursor"] is None
    first = everything["items"][0]
    assert set(first) == {"id", "event", "session_id", "timestamp", "data"}
    assert first["session_id"] == sid and first["data"]["status"] == "starting"

    page = (await api.call("GET", "/api/v1/events", params={"limit": 2})).json()
    assert [e["id"] for e in page["items"]] == [e["id"] for e in everything["items"][:2]]
    rest = (await api.call("GET", "/api/v1/events", params={"after": page["next_cursor"]})).json()
    assert [e["id"] for e in rest["items"]] == [e["id"] for e in everything["items"][2:]]
    # ``cursor=`` pages as it does for every list (a generic client's way).
    same = (await api.call("GET", "/api/v1/events", params={"cursor": page["next_cursor"]})).json()
    assert same["items"] == rest["items"]
    bad = await api.call("GET", "/api/v1/events", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422, bad.text

    # An agent only reads the events of sessions shared with them.
    _, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    assert (await api.call("GET", "/api/v1/events", key=agent_key)).json()["items"] == []
    r = await api.call("GET", "/api/v1/events", key=agent_key, params={"session_id": sid})
    assert r.status_code == 403
    bad = await api.call("GET", "/api/v1/events", params={"limit": 1001})
    assert bad.status_code == 422


async def test_openapi_document_describes_the_api(api: Api) -> None:
    r = await api.call("GET", "/schema/openapi.json", key=None)
    assert r.status_code == 200
    doc = r.json()
    paths = doc["paths"]
    for path in (
        "/api/v1/sessions",
        "/api/v1/sessions/{session_id}",
        "/api/v1/sessions/{session_id}/qr",
        "/api/v1/sessions/{session_id}/pairing-code",
        "/api/v1/whatsapp/qr",
        "/api/v1/users",
        "/api/v1/organizations",
        "/api/v1/auth/token",
        "/api/v1/events",
        "/health",
        "/metrics",
    ):
        assert path in paths, path
    create = paths["/api/v1/sessions"]["post"]
    assert create["tags"] == ["Sessions"]
    assert {"201", "401", "409", "422"} <= set(create["responses"])
    assert "ErrorBody" in doc["components"]["schemas"]
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert {t["name"] for t in doc["tags"]} >= {"Sessions", "Users", "Operations"}
    for path, operations in paths.items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            assert operation["tags"], (method, path)
            for status in ("400", "401", "422"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"]["$ref"].endswith("/ErrorBody"), (method, path, status)
    send = paths["/api/v1/sessions/{session_id}/messages"]["post"]
    assert "413" in send["responses"]
    body_schema = doc["components"]["schemas"]["SendMessageIn"]
    assert body_schema["properties"]["to"]["examples"]


async def test_browsers_may_call_the_api_cross_origin(api: Api) -> None:
    r = await api.call(
        "OPTIONS",
        "/api/v1/sessions",
        key=None,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] in ("*", "https://app.example.com")


async def test_health_is_503_when_the_database_does_not_answer(
    tmp_path: Path, engine: FakeEngine, store: MemoryStore
) -> None:
    class Down(ReadHealth):
        async def __call__(self) -> Health:
            raise ConnectionError("database is down")

    app = make_app(tmp_path, engine, store)
    async with AsyncTestClient(app) as client:
        runtime = app.state[RUNTIME]
        runtime.objects["read_health"] = Down(runtime.objects["uow"])
        r = await client.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "unavailable", "sessions": {}}


async def test_a_client_hanging_up_mid_body_is_not_an_internal_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="whatsgate.http")
    sent: list[dict[str, Any]] = []
    chunks = [
        {"type": "http.request", "body": b'{"name": "sal', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/sessions",
        "raw_path": b"/api/v1/sessions",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    await api.app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("disconnected" in r.getMessage() for r in caplog.records)
    assert api.store.sessions == {}  # nothing half-created
