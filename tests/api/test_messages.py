"""Sending, reading a message and its media, checking numbers."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from .conftest import ADMIN_KEY, Api, new_session, new_tenant, new_user

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def paired_session(api: Api, key: str = ADMIN_KEY) -> str:
    sid: str = (await new_session(api, key=key))["id"]
    await api.call("GET", f"/api/v1/sessions/{sid}/qr", key=key)
    await api.engine.scan(sid)
    return sid


async def wait_status(api: Api, message_id: str, status: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(300):
        body = (await api.call("GET", f"/api/v1/messages/{message_id}")).json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"message never {status}: {body}")


async def test_a_text_is_queued_then_sent_by_the_outbox(api: Api) -> None:
    sid = await paired_session(api)
    r = await api.call(
        "POST", f"/api/v1/sessions/{sid}/messages", json={"to": "+55 66 99999-0001", "text": "hi"}
    )
    assert r.status_code == 202
    body = r.json()
    assert (body["status"], body["throttled"]) == ("queued", False)
    sent = await wait_status(api, body["id"], "sent")
    assert sent["chat"] == "5566999990001@s.whatsapp.net" and sent["direction"] == "out"
    assert sent["wa_id"] == api.engine.sent[0].result.wa_id
    assert api.engine.sent[0].message.text == "hi"
    metrics = (await api.call("GET", "/metrics", key=None)).text.splitlines()
    assert 'whatsgate_messages_total{direction="out"} 1' in metrics
    assert 'whatsgate_send_latency_seconds_bucket{le="+Inf"} 1' in metrics


async def test_media_by_base64_round_trips(api: Api) -> None:
    sid = await paired_session(api)
    r = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/messages",
        json={
            "to": "5566999990001",
            "type": "image",
            "media": {
                "data": base64.b64encode(PNG).decode(),
                "mime": "image/png",
                "filename": "dot.png",
                "caption": "a dot",
            },
        },
    )
    assert r.status_code == 202, r.text
    media = await api.call("GET", f"/api/v1/messages/{r.json()['id']}/media")
    assert media.status_code == 200
    assert media.headers["content-type"] == "image/png" and media.content == PNG
    assert "dot.png" in media.headers["content-disposition"]
    message = (await api.call("GET", f"/api/v1/messages/{r.json()['id']}")).json()
    assert message["text"] == "a dot" and message["media"]["size"] == len(PNG)


async def test_send_mistakes_are_4xx(api: Api) -> None:
    unpaired = (await new_session(api, name="unpaired"))["id"]
    r = await api.call(
        "POST", f"/api/v1/sessions/{unpaired}/messages", json={"to": "5566999990001", "text": "x"}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "session_not_connected"
    sid = await paired_session(api)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"to": "abc", "text": "x"}, 422, "invalid_phone_number"),
        ({"to": "5566999990001", "type": "poll", "text": "x"}, 422, "invalid_input"),
        ({"to": "5566999990001", "type": "image"}, 422, "invalid_message"),
        ({"to": "5566999990001", "text": ""}, 422, "invalid_message"),
        (
            {"to": "5566999990001", "type": "image", "media": {"data": "aGk=", "url": "http://x"}},
            422,
            "invalid_message",
        ),
        ({"to": "5566999990001", "text": "x", "reply_to": "nope"}, 404, "message_not_found"),
        (
            {"to": "5566999990001", "type": "image", "media": {"url": "http://127.0.0.1/a.png"}},
            422,
            "invalid_input",
        ),
    ]
    for body, status, code in cases:
        r = await api.call("POST", f"/api/v1/sessions/{sid}/messages", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
    assert api.store.messages == {}


async def test_a_media_body_may_be_large_but_not_unbounded(api: Api) -> None:
    sid = await paired_session(api)
    big = {"to": "5566999990001", "type": "document", "media": {"mime": "application/pdf"}}
    two_mib = base64.b64encode(b"%PDF" + b"0" * (2 * 1024 * 1024)).decode()
    big["media"]["data"] = two_mib  # type: ignore[index]
    accepted = await api.call("POST", f"/api/v1/sessions/{sid}/messages", json=big)
    assert accepted.status_code == 202, accepted.text[:300]
    huge = b'{"to": "5566999990001", "text": "' + b"x" * (65 * 1024 * 1024) + b'"}'
    r = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/messages",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


async def test_messages_are_private_to_their_organization_and_session(api: Api) -> None:
    sid = await paired_session(api)
    r = await api.call(
        "POST", f"/api/v1/sessions/{sid}/messages", json={"to": "5566999990001", "text": "x"}
    )
    mid = r.json()["id"]
    globex = await new_tenant(api, "Globex")
    for path in (f"/api/v1/messages/{mid}", f"/api/v1/messages/{mid}/media"):
        other = await api.call("GET", path, key=globex.admin_key)
        assert other.status_code == 404, path
    send = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/messages",
        key=globex.admin_key,
        json={"to": "5566999990001", "text": "x"},
    )
    assert send.status_code == 404
    _, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    assert (await api.call("GET", f"/api/v1/messages/{mid}", key=agent_key)).status_code == 403
    send = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/messages",
        key=agent_key,
        json={"to": "5566999990001", "text": "x"},
    )
    assert send.status_code == 403
    # A media send checks access before its URL is fetched: the refusal, not the fetcher's
    # answer about the address (a private one, 422).
    for key, status in ((globex.admin_key, 404), (agent_key, 403)):
        send = await api.call(
            "POST",
            f"/api/v1/sessions/{sid}/messages",
            key=key,
            json={"to": "5566999990001", "type": "image", "media": {"url": "http://127.0.0.1/a"}},
        )
        assert send.status_code == status, send.text
    assert len(api.store.messages) == 1
    missing = await api.call("GET", "/api/v1/messages/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "message_not_found"


async def test_check_numbers(api: Api) -> None:
    sid = await paired_session(api)
    api.engine.known_numbers = {"5566999990001"}
    r = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/contacts/check",
        json={"numbers": ["+55 66 99999-0001", "5566999990002"]},
    )
    assert r.status_code == 200
    assert r.json() == [
        {"number": "+55 66 99999-0001", "jid": "5566999990001@s.whatsapp.net", "exists": True},
        {"number": "5566999990002", "jid": None, "exists": False},
    ]
    empty = await api.call("POST", f"/api/v1/sessions/{sid}/contacts/check", json={"numbers": []})
    assert empty.status_code == 422
