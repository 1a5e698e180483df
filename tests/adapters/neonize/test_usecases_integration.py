"""neonize's events, through the adapter, into the use cases on in-memory repositories.

The engine is the real ``NeonizeEngine``; only the Go client is not started (nothing here can
reach WhatsApp): the test plays neonize's Go side through the same C callbacks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.neonize import protos as p
from tests.adapters.neonize.conftest import OFFLINE_PROXY, GoSide, HandDrivenNeonizeEngine, until
from tests.unit.usecases.harness import World
from whatsgate.adapters.neonize import mapping
from whatsgate.adapters.neonize._runtime import e2e, npb
from whatsgate.adapters.neonize.engine import NeonizeEngine
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Direction, MessageKind, MessageStatus
from whatsgate.domain.session import Session, SessionStatus
from whatsgate.usecases.sessions import InitializeCommand, SessionCommand

ME = Jid.phone(p.ME)
ALICE = f"{p.ALICE}@s.whatsapp.net"
GROUP = f"{p.GROUP}@g.us"


@pytest.fixture
async def world(tmp_path: Path) -> Any:
    engine = HandDrivenNeonizeEngine(tmp_path)
    world = World(engine=engine)  # type: ignore[arg-type]
    yield world
    await world.connections.close_all()
    await engine.close()


async def started(world: World) -> tuple[Session, GoSide]:
    session = await world.new_session()
    await world.initialize(InitializeCommand(session_id=session.id, wait=False))
    engine: HandDrivenNeonizeEngine = world.engine  # type: ignore[assignment]
    await until(lambda: session.id in engine.go)
    return session, engine.go[session.id]


async def fire(go: GoSide, code: int, event: Any) -> None:
    await asyncio.to_thread(go.fire, code, event)


async def connected(world: World) -> tuple[Session, GoSide]:
    session, go = await started(world)
    await fire(go, mapping.PAIR_STATUS, p.pair_success())
    await fire(go, mapping.CONNECTED, p.connected())
    await until(lambda: world.statuses(session.id)[-1:] == ["connected"])
    return session, go


async def test_qr_then_pairing_then_connected(world: World) -> None:
    session, go = await started(world)
    await fire(go, mapping.QR, p.qr("2@first,key,id,adv", "2@second,key,id,adv"))
    await until(lambda: bool(world.events("session.qr")))
    waiting = await world.session(session.id)
    assert waiting.status is SessionStatus.AWAITING_SCAN
    assert waiting.qr == "2@first,key,id,adv"
    await fire(go, mapping.PAIR_STATUS, p.pair_success())
    await fire(go, mapping.CONNECTED, p.connected())
    await until(lambda: world.statuses(session.id)[-1:] == ["connected"])
    live = await world.session(session.id)
    assert live.jid == ME
    assert live.qr is None


async def test_messages_of_every_kind_are_stored_and_published(world: World) -> None:
    session, go = await connected(world)
    sid = session.id
    await fire(go, mapping.MESSAGE, p.message_event(p.text("hello"), wa_id="T1"))
    await fire(
        go,
        mapping.MESSAGE,
        p.message_event(p.text("hi group"), wa_id="G1", chat=p.jid(p.GROUP, "g.us"), group=True),
    )
    await fire(go, mapping.MESSAGE, p.message_event(p.reply("yes", "T1"), wa_id="R1"))
    await fire(go, mapping.MESSAGE, p.message_event(p.image("photo"), wa_id="I1"))
    reaction = e2e.Message(
        reactionMessage=e2e.ReactionMessage(
            key=p.common.MessageKey(remoteJID=ALICE, fromMe=False, ID="T1"), text="❤️"
        )
    )
    await fire(go, mapping.MESSAGE, p.message_event(reaction, wa_id="X1"))
    edit = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(
            key=p.common.MessageKey(remoteJID=ALICE, fromMe=False, ID="R1"),
            type=e2e.ProtocolMessage.MESSAGE_EDIT,
            editedMessage=p.text("yes, edited"),
        )
    )
    await fire(go, mapping.MESSAGE, p.message_event(edit, wa_id="E1", edit="1"))
    revoke = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(
            key=p.common.MessageKey(remoteJID=ALICE, fromMe=False, ID="I1"),
            type=e2e.ProtocolMessage.REVOKE,
        )
    )
    await fire(go, mapping.MESSAGE, p.message_event(revoke, wa_id="V1", edit="7"))
    # The callbacks returned only after each commit: everything is there now.
    text = await world.message_by_wa_id(sid, "T1")
    assert (text.kind, text.text, text.direction) == (MessageKind.TEXT, "hello", Direction.IN)
    assert text.reactions == {ALICE: "❤️"}
    group = await world.message_by_wa_id(sid, "G1")
    assert (str(group.chat), str(group.sender)) == (GROUP, ALICE)
    reply = await world.message_by_wa_id(sid, "R1")
    assert (reply.quoted_wa_id, reply.text) == ("T1", "yes, edited")
    assert reply.edited_at is not None
    image = await world.message_by_wa_id(sid, "I1")
    assert image.kind is MessageKind.IMAGE
    assert image.media is not None
    assert image.media.engine_ref is not None
    assert image.revoked_at is not None
    conversation = await world.conversation(sid, ALICE)
    assert conversation.unread_count >= 3
    assert len(world.events("message.new")) >= 4
    contact = await world.contact(sid, ALICE)
    assert contact.push_name == "Alice"


async def test_receipts_move_the_ticks_of_what_the_account_sent(world: World) -> None:
    session, go = await connected(world)
    await fire(
        go,
        mapping.MESSAGE,
        p.message_event(p.text("sent on the phone"), wa_id="OUT1", from_me=True),
    )
    await fire(go, mapping.RECEIPT, p.receipt(["OUT1"], npb.Receipt.READ))
    await until(lambda: bool(world.events("message.status")))
    sent = await world.message_by_wa_id(session.id, "OUT1")
    assert sent.direction is Direction.OUT
    assert sent.status is MessageStatus.READ


async def test_reading_the_chat_on_the_phone_zeroes_its_unread_here(world: World) -> None:
    session, go = await connected(world)
    await fire(go, mapping.MESSAGE, p.message_event(p.text("unread"), wa_id="IN1"))
    assert (await world.conversation(session.id, ALICE)).unread_count == 1
    read_on_phone = p.receipt(["IN1"], npb.Receipt.READ_SELF, sender=p.jid(p.ME, device=0))
    await fire(go, mapping.RECEIPT, read_on_phone)
    await until(lambda: bool(world.events("conversation.updated")))

    async def unread() -> int:
        return (await world.conversation(session.id, ALICE)).unread_count

    for _ in range(100):
        if await unread() == 0:
            break
        await asyncio.sleep(0.01)
    assert await unread() == 0


async def test_typing_is_published(world: World) -> None:
    _, go = await connected(world)
    await fire(go, mapping.CHAT_PRESENCE, p.chat_presence(npb.ChatPresence.COMPOSING))
    await until(lambda: bool(world.events("chat.typing")))
    [typing] = world.events("chat.typing")
    assert typing.data["state"] == "composing"


async def test_history_sync_is_imported(world: World) -> None:
    session, go = await connected(world)
    last_week = int(world.clock.now().timestamp()) - 7 * 86400
    data = p.history(
        [
            p.conversation(
                ALICE,
                p.web_message("H1", ALICE, p.text("from last week"), timestamp=last_week),
                p.web_message(
                    "H2", ALICE, p.text("my old answer"), from_me=True, timestamp=last_week + 60
                ),
                name="Alice Doe",
            )
        ],
        pushnames=[(ALICE, "Ali")],
        mappings=[(ALICE, f"{p.ALICE_LID}@lid")],
        progress=100,
    )
    await fire(go, mapping.HISTORY_SYNC, data)
    old = await world.message_by_wa_id(session.id, "H1")
    mine = await world.message_by_wa_id(session.id, "H2")
    assert (old.text, old.direction) == ("from last week", Direction.IN)
    assert mine.direction is Direction.OUT


@pytest.mark.parametrize(
    ("code", "event", "status", "reason"),
    [
        (mapping.LOGGED_OUT, p.logged_out(), SessionStatus.LOGGED_OUT, "logged_out"),
        (mapping.TEMPORARY_BAN, p.temporary_ban(), SessionStatus.BANNED, None),
        (mapping.STREAM_REPLACED, p.stream_replaced(), SessionStatus.REPLACED, None),
        (
            mapping.CONNECT_FAILURE,
            p.connect_failure("CLIENT_OUTDATED"),
            SessionStatus.FAILED,
            "client_outdated",
        ),
        (mapping.DISCONNECTED, p.disconnected(), SessionStatus.RECONNECTING, "network"),
    ],
)
async def test_the_connection_ending_sets_the_session_status(
    world: World, code: int, event: Any, status: SessionStatus, reason: str | None
) -> None:
    session, go = await connected(world)
    await fire(go, code, event)
    await until(lambda: world.statuses(session.id)[-1:] == [str(status)])
    ended = await world.session(session.id)
    assert ended.status is status
    if reason is not None:
        assert ended.status_reason == reason


async def test_a_logout_from_the_phone_clears_the_device_store(world: World) -> None:
    session, go = await connected(world)
    engine: HandDrivenNeonizeEngine = world.engine  # type: ignore[assignment]
    store = engine.store_path(session.id)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"device keys")
    await fire(go, mapping.LOGGED_OUT, p.logged_out())
    await until(lambda: not store.exists())


async def test_an_offline_start_with_the_real_client_is_reconnecting_for_the_network(
    tmp_path: Path,
) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    world = World(engine=engine)  # type: ignore[arg-type]
    session = await world.new_session()
    result = await asyncio.wait_for(
        world.initialize(InitializeCommand(session_id=session.id)), timeout=10
    )
    assert result.session.status is SessionStatus.RECONNECTING
    assert result.session.status_reason == "network"
    await world.connections.close_all()
    await engine.close()


async def test_a_corrupt_device_store_fails_the_session_until_a_logout_clears_it(
    tmp_path: Path,
) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    world = World(engine=engine)  # type: ignore[arg-type]
    session = await world.new_session()
    store = engine.store_path(session.id)
    store.parent.mkdir(parents=True)
    store.write_bytes(b"not a database" * 64)
    result = await asyncio.wait_for(
        world.initialize(InitializeCommand(session_id=session.id)), timeout=10
    )
    assert result.session.status is SessionStatus.FAILED
    assert result.session.status_reason == "credentials_corrupted"
    assert store.exists()  # kept for whoever wants to look at it; no silent new pairing
    await world.logout(SessionCommand(session_id=session.id))
    assert not store.exists()
    again = await asyncio.wait_for(
        world.initialize(InitializeCommand(session_id=session.id)), timeout=10
    )
    assert again.session.status is SessionStatus.RECONNECTING  # a fresh pairing, offline here
    await world.connections.close_all()
    await engine.close()


async def test_every_content_kind_is_stored_with_its_details(world: World) -> None:
    session, go = await connected(world)
    contents = {
        "VID": (
            e2e.Message(videoMessage=e2e.VideoMessage(mimetype="video/mp4", seconds=9)),
            MessageKind.VIDEO,
        ),
        "AUD": (
            e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/mpeg")),
            MessageKind.AUDIO,
        ),
        "PTT": (
            e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/ogg", PTT=True)),
            MessageKind.VOICE,
        ),
        "DOC": (
            e2e.Message(
                documentMessage=e2e.DocumentMessage(mimetype="application/pdf", fileName="a.pdf")
            ),
            MessageKind.DOCUMENT,
        ),
        "STK": (
            e2e.Message(stickerMessage=e2e.StickerMessage(mimetype="image/webp")),
            MessageKind.STICKER,
        ),
        "LOC": (
            e2e.Message(
                locationMessage=e2e.LocationMessage(
                    degreesLatitude=1.0, degreesLongitude=2.0, name="here"
                )
            ),
            MessageKind.LOCATION,
        ),
        "VCF": (
            e2e.Message(contactMessage=e2e.ContactMessage(displayName="Bob", vcard="BEGIN:VCARD")),
            MessageKind.CONTACT,
        ),
        "POL": (
            e2e.Message(
                pollCreationMessage=e2e.PollCreationMessage(
                    name="Lunch?", options=[e2e.PollCreationMessage.Option(optionName="yes")]
                )
            ),
            MessageKind.POLL,
        ),
        "ODD": (
            e2e.Message(groupInviteMessage=e2e.GroupInviteMessage(groupName="club")),
            MessageKind.UNSUPPORTED,
        ),
    }
    for wa_id, (content, _) in contents.items():
        await fire(go, mapping.MESSAGE, p.message_event(content, wa_id=wa_id))
    for wa_id, (_, kind) in contents.items():
        stored = await world.message_by_wa_id(session.id, wa_id)
        assert stored.kind is kind, wa_id
    document = await world.message_by_wa_id(session.id, "DOC")
    assert document.media is not None
    assert document.media.file_name == "a.pdf"
    location = await world.message_by_wa_id(session.id, "LOC")
    assert location.location is not None
    assert location.location.name == "here"
    contact = await world.message_by_wa_id(session.id, "VCF")
    assert contact.contact is not None
    assert contact.contact.display_name == "Bob"
    poll = await world.message_by_wa_id(session.id, "POL")
    assert poll.poll is not None
    assert poll.poll.options == ("yes",)
    odd = await world.message_by_wa_id(session.id, "ODD")
    assert odd.unsupported_type == "groupInviteMessage"
    published = {e.data["wa_id"] for e in world.events("message.new")}
    assert set(contents) <= published
