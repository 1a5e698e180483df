"""The whole sandbox flow against a real ``whatsgate serve --engine sandbox`` process, over
HTTP (httpx) and socket.io (python-socketio): pairing by QR, inbound direct and group messages,
a reply and its ticks, faults, a restart without a QR, logout and a new QR.

The sandbox's timings are shortened through the environment (``WHATSGATE_SANDBOX_*``,
``WHATSGATE_OUTBOX_RETRY_SECONDS``), so the whole flow takes seconds; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import zxingcpp
from PIL import Image

from tests.e2e.test_serve import KEY, free_port, start_server, wait_until_up

pytestmark = pytest.mark.e2e

ENV = {
    "WHATSGATE_SANDBOX_QR_FIRST": "2",
    "WHATSGATE_SANDBOX_QR_NEXT": "1.5",
    "WHATSGATE_SANDBOX_DELIVERED_AFTER": "0.2",
    "WHATSGATE_SANDBOX_READ_AFTER": "0.4",
    "WHATSGATE_SANDBOX_HISTORY_MESSAGES": "40",
    "WHATSGATE_OUTBOX_RETRY_SECONDS": "[0.3]",
    "WHATSGATE_OUTBOX_MAX_ATTEMPTS": "3",
}
PHONE_JID = "5511999990001@s.whatsapp.net"  # the sandbox phone's default number
CONTACT = "+55 11 91234-5678"
CONTACT_JID = "5511912345678@s.whatsapp.net"
MEMBER = "+55 21 98888-7777"
GROUP_JID = "120363000000000042@g.us"
HISTORY_CHATS = {
    "5511987651001@s.whatsapp.net",
    "5511987651002@s.whatsapp.net",
    "5521987651003@s.whatsapp.net",
    "14155551004@s.whatsapp.net",
    "120363025246125486@g.us",
}
WAIT = 10.0


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def poll(check: Callable[[], Awaitable[Any]], what: str, within: float = WAIT) -> Any:
    """``check()`` until it returns something truthy, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Listener:
    """A socket.io client subscribed to one session, keeping every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.sio.on("*", self._on_any)

    async def _on_any(self, name: str, data: dict[str, Any]) -> None:
        assert data["event"] == name
        self.events.append(data)

    async def connect(self, base: str, session_id: str, after: str | None = None) -> None:
        await self.sio.connect(base, auth={"token": KEY}, transports=["websocket"])
        body = {"session_id": session_id} | ({"after": after} if after else {})
        ack = await self.sio.call("subscribe", body, timeout=5)
        assert ack["ok"] is True, ack

    def seen(self, name: str, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name and match(e["data"])]

    async def wait_for(
        self, name: str, match: Callable[[dict[str, Any]], bool], within: float = WAIT
    ) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            hits = self.seen(name, match)
            return hits[0] if hits else None

        event: dict[str, Any] = await poll(found, f"socket.io {name}", within)
        return event

    def statuses(self) -> list[str]:
        return [e["data"]["status"] for e in self.events if e["event"] == "session.status"]


def decode_qr(png: bytes) -> str:
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(results) == 1, "the PNG holds exactly one QR code"
    text: str = results[0].text
    return text


async def status_of(client: httpx.AsyncClient, sid: str) -> str:
    response = await client.get(f"/api/v1/sessions/{sid}")
    assert response.status_code == 200
    status: str = response.json()["status"]
    return status


async def wait_status(client: httpx.AsyncClient, sid: str, wanted: str) -> None:
    async def reached() -> bool:
        return await status_of(client, sid) == wanted

    await poll(reached, f"session status {wanted}")


async def fault(client: httpx.AsyncClient, sid: str, **body: Any) -> None:
    response = await client.post(f"/api/v1/sandbox/sessions/{sid}/faults", json=body)
    assert response.status_code == 202, response.text


async def send_text(client: httpx.AsyncClient, sid: str, text: str) -> str:
    response = await client.post(
        f"/api/v1/sessions/{sid}/messages", json={"to": CONTACT, "type": "text", "text": text}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    message_id: str = response.json()["id"]
    return message_id


async def ticks_of(
    listener: Listener, message_id: str, last: str = "read", within: float = WAIT
) -> list[str]:
    await listener.wait_for(
        "message.status", lambda d: d["message_id"] == message_id and d["status"] == last, within
    )
    return [e["data"]["status"] for e in listener.seen("message.status", _for(message_id))]


def _for(message_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: d["message_id"] == message_id


async def last_event_id(client: httpx.AsyncClient, sid: str) -> str:
    """The id of the session's newest stored event (following the pages)."""
    params = {"session_id": sid, "limit": 1000}
    last = ""
    while True:
        page = (await client.get("/api/v1/events", params=params)).json()
        last = page["items"][-1]["id"] if page["items"] else last
        if page["next_cursor"] is None:
            return last
        params["cursor"] = page["next_cursor"]


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM, within: float = 15) -> str:
    """A signal, then the output; fails (after killing it) when it does not end in time."""
    process.send_signal(signum)
    try:
        return process.communicate(timeout=within)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        name = signal.Signals(signum).name
        pytest.fail(f"the server did not stop on {name} within {within} s:\n{output}")


async def test_the_sandbox_flow_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    outputs: list[str] = []
    process = start_server(tmp_path, port, ENV)
    try:
        await wait_until_up(process, base)
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as client:
            sid, first_qrs = await _pair(client, base)
            retried = await _messages(client, base, sid)
            before_restart = await last_event_id(client, sid)
            outputs.append(stop(process))
            assert process.returncode == 0, outputs[-1]
            # The failed attempts are logged (and retried: the message was read).
            assert f"message {retried} attempt 2 failed: " in outputs[-1], outputs[-1]

            process = start_server(tmp_path, port, ENV)
            await wait_until_up(process, base)
            await _after_restart(client, base, sid, before_restart, first_qrs)
        outputs.append(stop(process, signal.SIGINT))  # Ctrl+C stops it as cleanly
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, outputs[-1]
    for output in outputs:
        assert "whatsgate stopped" in output, output
        assert "Traceback" not in output, output


async def _pair(client: httpx.AsyncClient, base: str) -> tuple[str, set[str]]:
    """Create → QR as JSON and PNG (the same payload) → a rotation → scan → connected, with
    the history of the phone imported."""
    created = await client.post("/api/v1/sessions", json={"name": "e2e"})
    assert created.status_code == 201 and created.json()["status"] == "stopped"
    sid: str = created.json()["id"]
    listener = Listener()
    await listener.connect(base, sid)
    try:
        # The JSON and the PNG of the same QR (fetched again if it rotated in between).
        for _ in range(3):
            qr = (await client.get(f"/api/v1/sessions/{sid}/qr")).json()
            png = await client.get(f"/api/v1/sessions/{sid}/qr", params={"format": "png"})
            again = (await client.get(f"/api/v1/sessions/{sid}/qr")).json()
            if qr["qr"] == again["qr"]:
                break
        assert qr["status"] == "awaiting_scan" and qr["qr"].startswith("2@")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert decode_qr(png.content) == qr["qr"]
        first = await listener.wait_for("session.qr", lambda d: True)
        valid_for = parse_time(first["data"]["expires_at"]) - parse_time(first["timestamp"])
        assert abs(valid_for - timedelta(seconds=2)) < timedelta(seconds=0.5)

        # WhatsApp's rotation: a new code, valid ``qr_next`` seconds.
        rotated = await listener.wait_for("session.qr", lambda d: d["qr"] != qr["qr"])
        valid_for = parse_time(rotated["data"]["expires_at"]) - parse_time(rotated["timestamp"])
        assert abs(valid_for - timedelta(seconds=1.5)) < timedelta(seconds=0.5)

        scanned = await client.post(f"/api/v1/sandbox/sessions/{sid}/scan", json={})
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["status"] == "connected" and scanned.json()["jid"] == PHONE_JID
        connected = await listener.wait_for("session.status", lambda d: d["status"] == "connected")
        assert connected["data"]["qr"] is None and connected["data"]["paired_at"]
        assert listener.statuses()[:2] == ["starting", "awaiting_scan"]

        # The phone's history (40 messages over 40 days): imported, the last 30 days only.
        await listener.wait_for("history.progress", lambda d: d["done"] is True)
        chats = await client.get(f"/api/v1/sessions/{sid}/conversations", params={"limit": 500})
        assert {c["chat"] for c in chats.json()["items"]} == HISTORY_CHATS
        oldest_allowed = datetime.now().astimezone() - timedelta(days=30, minutes=1)
        imported = 0
        for conversation in chats.json()["items"]:
            page = await client.get(
                f"/api/v1/conversations/{conversation['id']}/messages", params={"limit": 500}
            )
            stamps = [parse_time(m["timestamp"]) for m in page.json()["items"]]
            assert all(stamp >= oldest_allowed for stamp in stamps)
            imported += len(stamps)
        assert 0 < imported < 40
        return sid, {e["data"]["qr"] for e in listener.seen("session.qr", lambda d: True)}
    finally:
        await listener.sio.disconnect()


async def _messages(client: httpx.AsyncClient, base: str, sid: str) -> str:
    """Inbound direct and group messages, a reply with its ticks, then the faults that leave
    the session running: failed sends, a dropped connection, a temporary ban."""
    listener = Listener()
    await listener.connect(base, sid)
    try:
        # A contact writes.
        inbound = await client.post(
            f"/api/v1/sandbox/sessions/{sid}/inbound", json={"from": CONTACT, "text": "hello"}
        )
        assert inbound.status_code == 202, inbound.text
        wa_id = inbound.json()["id"]
        new = await listener.wait_for("message.new", lambda d: d["wa_id"] == wa_id)
        assert new["data"]["chat"] == CONTACT_JID and new["data"]["direction"] == "in"
        assert new["data"]["text"] == "hello" and new["data"]["status"] == "received"
        direct = await listener.wait_for("conversation.updated", lambda d: d["chat"] == CONTACT_JID)
        assert direct["data"]["unread_count"] == 1 and direct["data"]["is_group"] is False
        conversation_id = direct["data"]["id"]

        # A member writes in a group.
        group = await client.post(
            f"/api/v1/sandbox/sessions/{sid}/inbound",
            json={"from": MEMBER, "chat": GROUP_JID, "text": "hi all"},
        )
        assert group.status_code == 202, group.text
        group_new = await listener.wait_for("message.new", lambda d: d["chat"] == GROUP_JID)
        assert group_new["data"]["text"] == "hi all"
        assert group_new["data"]["sender_alt"] == "5521988887777@s.whatsapp.net"
        group_update = await listener.wait_for(
            "conversation.updated", lambda d: d["chat"] == GROUP_JID
        )
        assert group_update["data"]["is_group"] is True

        # Both in the inbox, newest first, and the messages under them.
        listed = await client.get(f"/api/v1/sessions/{sid}/conversations", params={"limit": 2})
        assert [c["chat"] for c in listed.json()["items"]] == [GROUP_JID, CONTACT_JID]
        unread = await client.get(
            f"/api/v1/sessions/{sid}/conversations", params={"unread": "true", "limit": 500}
        )
        assert {GROUP_JID, CONTACT_JID} <= {c["chat"] for c in unread.json()["items"]}
        page = await client.get(f"/api/v1/conversations/{conversation_id}/messages")
        assert [(m["wa_id"], m["text"]) for m in page.json()["items"]] == [(wa_id, "hello")]

        # The reply: queued, then sent, delivered, read, in that order.
        reply = await send_text(client, sid, "hi there")
        assert await ticks_of(listener, reply) == ["sent", "delivered", "read"]
        stored = (await client.get(f"/api/v1/messages/{reply}")).json()
        assert stored["status"] == "read" and stored["conversation_id"] == conversation_id
        assert stored["direction"] == "out" and stored["wa_id"].startswith("3EB0")

        # A number without WhatsApp: the server takes the send (one tick), nobody reads it;
        # a message sent after it has long been read meanwhile.
        nobody = await client.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"to": "+1 415 555 0000", "type": "text", "text": "anyone?"},
        )
        assert nobody.status_code == 202
        later = await send_text(client, sid, "still there?")
        assert await ticks_of(listener, later) == ["sent", "delivered", "read"]
        assert await ticks_of(listener, nobody.json()["id"], last="sent") == ["sent"]

        # The contact types; the attendant reads the chat: unread back to 0.
        typing = await client.post(f"/api/v1/sandbox/sessions/{sid}/typing", json={"from": CONTACT})
        assert typing.status_code == 202
        typed = await listener.wait_for("chat.typing", lambda d: d["chat"] == CONTACT_JID)
        assert typed["data"]["state"] == "composing"
        assert typed["data"]["conversation_id"] == conversation_id
        read = await client.post(f"/api/v1/conversations/{conversation_id}/read")
        assert read.status_code == 200 and read.json()["unread_count"] == 0
        await listener.wait_for(
            "conversation.updated", lambda d: d["id"] == conversation_id and d["unread_count"] == 0
        )

        # Two sends fail: the outbox retries (0.3 s apart here) and the message still goes.
        await fault(client, sid, fail_sends=2)
        retried = await send_text(client, sid, "after two failures")
        assert await ticks_of(listener, retried) == ["sent", "delivered", "read"]

        # More failures than attempts (3 here): failed, saying why; the next send goes.
        await fault(client, sid, fail_sends=5)
        lost = await send_text(client, sid, "never arrives")
        assert await ticks_of(listener, lost, last="failed") == ["failed"]
        failed = (await client.get(f"/api/v1/messages/{lost}")).json()
        assert failed["status"] == "failed" and "injected fault" in failed["error"]
        await fault(client, sid, fail_sends=0)
        assert await ticks_of(listener, await send_text(client, sid, "fine again")) == [
            "sent",
            "delivered",
            "read",
        ]

        # The connection drops: reconnecting, then connected again by itself; a message
        # queued meanwhile goes as soon as it is back (not at the outbox's 15 s recheck).
        listener.events.clear()
        await fault(client, sid, disconnect=True)
        during = await send_text(client, sid, "while reconnecting")
        await listener.wait_for("session.status", lambda d: d["status"] == "connected")
        assert listener.statuses() == ["reconnecting", "connected"]
        assert await ticks_of(listener, during, within=5) == ["sent", "delivered", "read"]

        # A temporary ban: banned until its expiry, then connected again.
        listener.events.clear()
        await fault(client, sid, ban_seconds=1)
        await listener.wait_for("session.status", lambda d: d["status"] == "connected")
        banned, *rest = [e["data"] for e in listener.events if e["event"] == "session.status"]
        assert banned["status"] == "banned" and banned["banned_until"]
        assert [d["status"] for d in rest][-1] == "connected"
        assert "banned" not in [d["status"] for d in rest]
        assert await status_of(client, sid) == "connected"
        assert (await client.get(f"/api/v1/messages/{reply}")).json()["status"] == "read"
        return retried
    finally:
        await listener.sio.disconnect()


async def _after_restart(
    client: httpx.AsyncClient, base: str, sid: str, before: str, first_qrs: set[str]
) -> None:
    """The restarted server reconnects the paired session without a QR and keeps its
    messages; replaced stays replaced; a logout needs a new QR; an outdated client fails; the
    phone unlinking the device needs a new QR too."""
    await wait_status(client, sid, "connected")
    since = await client.get("/api/v1/events", params={"session_id": sid, "after": before})
    names = [e["event"] for e in since.json()["items"]]
    assert "session.qr" not in names and names[-1] == "session.status"
    conversations = await client.get(f"/api/v1/sessions/{sid}/conversations", params={"limit": 500})
    chats = {c["chat"] for c in conversations.json()["items"]}
    assert {CONTACT_JID, GROUP_JID} <= chats

    listener = Listener()
    await listener.connect(base, sid, after=before)  # replays what happened since
    try:
        replayed = await listener.wait_for("session.status", lambda d: d["status"] == "connected")
        assert int(replayed["id"]) > int(before)

        # Another client takes the account: replaced, and no reconnect fight.
        await fault(client, sid, replace=True)
        await listener.wait_for("session.status", lambda d: d["status"] == "replaced")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert await status_of(client, sid) == "replaced"
            await asyncio.sleep(0.1)

        # Started again, it connects with the kept pairing: still no QR.
        started = await client.post(f"/api/v1/sessions/{sid}/start")
        assert started.status_code == 202
        await wait_status(client, sid, "connected")
        assert listener.seen("session.qr", lambda d: True) == []
        busy = await client.get(f"/api/v1/sessions/{sid}/qr")
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "already_connected"

        # Logged out: the pairing is gone, the QR endpoint starts it again with a new code.
        out = await client.post(f"/api/v1/sessions/{sid}/logout")
        assert out.status_code == 202 and out.json()["status"] == "logged_out"
        fresh = await client.get(f"/api/v1/sessions/{sid}/qr")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["status"] == "awaiting_scan" and fresh.json()["qr"] not in first_qrs
        qr_event = await listener.wait_for("session.qr", lambda d: True)
        assert qr_event["data"]["qr"] == fresh.json()["qr"]

        # Paired again; WhatsApp then rejects the client as outdated: failed, with the reason.
        scanned = await client.post(f"/api/v1/sandbox/sessions/{sid}/scan", json={})
        assert scanned.status_code == 200 and scanned.json()["status"] == "connected"
        await fault(client, sid, outdated=True)
        await wait_status(client, sid, "failed")
        failed = (await client.get(f"/api/v1/sessions/{sid}")).json()
        assert failed["status_reason"] == "client_outdated"
        assert (await client.post(f"/api/v1/sessions/{sid}/start")).status_code == 202
        await wait_status(client, sid, "connected")

        # The phone unlinks the device: logged out, and the next QR is a new one again.
        await fault(client, sid, logout=True)
        await wait_status(client, sid, "logged_out")
        again = await client.get(f"/api/v1/sessions/{sid}/qr")
        assert again.status_code == 200 and again.json()["status"] == "awaiting_scan"
        assert again.json()["qr"] not in {*first_qrs, fresh.json()["qr"]}
    finally:
        await listener.sio.disconnect()
