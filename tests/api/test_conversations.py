"""The inbox over HTTP: conversations, their messages, contacts, history sync."""

from __future__ import annotations

from datetime import UTC, datetime

from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind
from whatsgate.ports.engine import IncomingMessage, TypingState

from .conftest import ADMIN_KEY, Api, new_session, new_tenant, new_user
from .test_messages import paired_session

ANA = "5566999990001"
BRUNO = "5566999990002"


async def receive(api: Api, sid: str, phone: str, text: str, wa_id: str) -> None:
    who = Jid.phone(phone)
    await api.engine.emit(
        sid,
        IncomingMessage(
            wa_id=wa_id,
            chat=who,
            sender=who,
            push_name=f"Contact {phone[-1]}",
            timestamp=datetime.now(UTC),
            kind=MessageKind.TEXT,
            text=text,
        ),
    )


async def inbox(api: Api) -> tuple[str, dict[str, str]]:
    sid = await paired_session(api)
    await receive(api, sid, ANA, "hello from ana", "WA1")
    await receive(api, sid, BRUNO, "hi from bruno", "WA2")
    await receive(api, sid, ANA, "are you there?", "WA3")
    items = (await api.call("GET", f"/api/v1/sessions/{sid}/conversations")).json()["items"]
    return sid, {c["chat"].split("@")[0]: c["id"] for c in items}


async def test_conversations_list_newest_first_with_filters(api: Api) -> None:
    sid, ids = await inbox(api)
    page = (await api.call("GET", f"/api/v1/sessions/{sid}/conversations")).json()
    assert [c["chat"] for c in page["items"]] == [
        f"{ANA}@s.whatsapp.net",
        f"{BRUNO}@s.whatsapp.net",
    ]
    first = page["items"][0]
    assert (first["unread_count"], first["last_message_preview"]) == (2, "are you there?")
    assert first["status"] == "pending" and page["next_cursor"] is None

    one = (
        await api.call("GET", f"/api/v1/sessions/{sid}/conversations", params={"limit": 1})
    ).json()
    rest = (
        await api.call(
            "GET",
            f"/api/v1/sessions/{sid}/conversations",
            params={"limit": 1, "cursor": one["next_cursor"]},
        )
    ).json()
    assert [c["id"] for c in one["items"] + rest["items"]] == [ids[ANA], ids[BRUNO]]

    found = await api.call(
        "GET", f"/api/v1/sessions/{sid}/conversations", params={"q": "contact 2"}
    )
    assert [c["id"] for c in found.json()["items"]] == [ids[BRUNO]]
    bad = await api.call(
        "GET", f"/api/v1/sessions/{sid}/conversations", params={"status": "archived"}
    )
    assert bad.status_code == 422
    metrics = (await api.call("GET", "/metrics", key=None)).text.splitlines()
    assert 'whatsgate_messages_total{direction="in"} 3' in metrics


async def test_messages_read_assign_typing(api: Api) -> None:
    sid, ids = await inbox(api)
    cid = ids[ANA]
    messages = (await api.call("GET", f"/api/v1/conversations/{cid}/messages")).json()
    assert [m["text"] for m in messages["items"]] == ["hello from ana", "are you there?"]
    assert {m["status"] for m in messages["items"]} == {"received"}
    older = (
        await api.call("GET", f"/api/v1/conversations/{cid}/messages", params={"limit": 1})
    ).json()
    assert [m["text"] for m in older["items"]] == ["are you there?"]
    before = (
        await api.call(
            "GET",
            f"/api/v1/conversations/{cid}/messages",
            params={"limit": 1, "before": older["next_cursor"]},
        )
    ).json()
    assert [m["text"] for m in before["items"]] == ["hello from ana"]

    read = await api.call("POST", f"/api/v1/conversations/{cid}/read")
    assert read.status_code == 200 and read.json()["unread_count"] == 0
    connection = api.engine.connection(sid)
    assert [wa_ids for _, wa_ids in connection.read_marks] == [["WA1", "WA3"]]

    typing = await api.call(
        "POST", f"/api/v1/conversations/{cid}/typing", json={"state": "composing"}
    )
    assert typing.status_code == 202
    assert connection.typing == [(Jid.phone(ANA), TypingState.COMPOSING)]

    agent_id, agent_key = await new_user(api, ADMIN_KEY, "Bea")
    assert (await api.call("GET", f"/api/v1/conversations/{cid}", key=agent_key)).status_code == 403
    assigned = await api.call(
        "PATCH",
        f"/api/v1/conversations/{cid}",
        json={"assignee_id": agent_id, "external_ref": "lead-42", "metadata": {"tier": "gold"}},
    )
    assert assigned.status_code == 200
    body = assigned.json()
    assert (body["assignee_id"], body["status"], body["external_ref"]) == (
        agent_id,
        "active",
        "lead-42",
    )
    # The agent now sees the conversation assigned to them, but not the other one.
    mine = await api.call("GET", f"/api/v1/conversations/{cid}/messages", key=agent_key)
    assert mine.status_code == 200 and len(mine.json()["items"]) == 2
    other = await api.call("GET", f"/api/v1/conversations/{ids[BRUNO]}", key=agent_key)
    assert other.status_code == 403
    # ...and may answer it, but not write to another chat of that session.
    answer = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/messages",
        key=agent_key,
        json={"to": f"+{ANA}", "text": "On it!"},
    )
    assert answer.status_code == 202, answer.text
    elsewhere = await api.call(
        "POST",
        f"/api/v1/sessions/{sid}/messages",
        key=agent_key,
        json={"to": f"+{BRUNO}", "text": "hi"},
    )
    assert elsewhere.status_code == 403
    closed = await api.call(
        "PATCH", f"/api/v1/conversations/{cid}", key=agent_key, json={"status": "closed"}
    )
    assert closed.json()["status"] == "closed" and closed.json()["assignee_id"] == agent_id
    # Their event log holds the events of that conversation, and nothing of the session else.
    events = (await api.call("GET", "/api/v1/events", key=agent_key)).json()["items"]
    assert {e["event"] for e in events} == {"conversation.updated", "message.new"}
    assert {e["data"].get("conversation_id", e["data"]["id"]) for e in events} == {cid}
    unassigned = await api.call("PATCH", f"/api/v1/conversations/{cid}", json={"assignee_id": None})
    assert unassigned.json()["assignee_id"] is None
    unknown_user = await api.call(
        "PATCH", f"/api/v1/conversations/{cid}", json={"assignee_id": "nobody"}
    )
    assert unknown_user.status_code == 404


async def test_contacts_and_history_sync(api: Api) -> None:
    sid, ids = await inbox(api)
    contacts = (await api.call("GET", f"/api/v1/sessions/{sid}/contacts")).json()
    assert sorted(c["phone"] for c in contacts["items"]) == [ANA, BRUNO]
    found = await api.call("GET", f"/api/v1/sessions/{sid}/contacts", params={"q": "contact 1"})
    assert [c["phone"] for c in found.json()["items"]] == [ANA]
    linked = await api.call(
        "PATCH", f"/api/v1/sessions/{sid}/contacts/+{ANA}", json={"external_ref": "client-7"}
    )
    assert linked.status_code == 200 and linked.json()["external_ref"] == "client-7"
    missing = await api.call(
        "PATCH", f"/api/v1/sessions/{sid}/contacts/5566999990009", json={"external_ref": "x"}
    )
    assert missing.status_code == 404

    synced = await api.call("POST", f"/api/v1/sessions/{sid}/history/sync", json={"count": 20})
    by_chat = await api.call(
        "POST", f"/api/v1/sessions/{sid}/history/sync", json={"chat": f"+{BRUNO}", "days": 7}
    )
    by_id = await api.call("POST", f"/api/v1/sessions/{sid}/history/sync", json={"chat": ids[ANA]})
    assert (synced.status_code, by_chat.status_code, by_id.status_code) == (202, 202, 202)
    assert api.engine.connection(sid).history_requests == [
        (None, 20),
        (Jid.phone(BRUNO), 100),
        (Jid.phone(ANA), 100),
    ]
    unknown = await api.call(
        "POST", f"/api/v1/sessions/{sid}/history/sync", json={"chat": "5566999990009"}
    )
    assert unknown.status_code == 404


async def test_the_inbox_of_one_organization_is_invisible_to_another(api: Api) -> None:
    sid, ids = await inbox(api)
    globex = await new_tenant(api, "Globex")
    key = globex.admin_key
    for method, path, body in (
        ("GET", f"/api/v1/sessions/{sid}/conversations", None),
        ("GET", f"/api/v1/sessions/{sid}/contacts", None),
        ("POST", f"/api/v1/sessions/{sid}/history/sync", {}),
        ("GET", f"/api/v1/conversations/{ids[ANA]}", None),
        ("PATCH", f"/api/v1/conversations/{ids[ANA]}", {"status": "closed"}),
        ("POST", f"/api/v1/conversations/{ids[ANA]}/read", None),
        ("POST", f"/api/v1/conversations/{ids[ANA]}/typing", {"state": "paused"}),
        ("GET", f"/api/v1/conversations/{ids[ANA]}/messages", None),
    ):
        r = await api.call(method, path, key=key, json=body)
        assert r.status_code == 404, (method, path, r.text)
    stored = api.store.conversations[ids[ANA]]
    assert (stored.status, stored.unread_count) == ("pending", 2)
    events = (await api.call("GET", "/api/v1/events", key=key)).json()["items"]
    assert events == []
    own = await new_session(api, key=key, name="globex")
    assert (await api.call("GET", f"/api/v1/sessions/{own['id']}/conversations", key=key)).json()[
        "items"
    ] == []
