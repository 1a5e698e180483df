from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import timedelta

import pytest

from whatsgate.adapters.sandbox import InboundSpec
from whatsgate.domain.errors import (
    EngineError,
    InvalidInput,
    InvalidJid,
    InvalidMessage,
    InvalidPhoneNumber,
    MediaNotFound,
    SessionNotConnected,
    SessionNotRunning,
)
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Location, Media, MessageKind
from whatsgate.ports.engine import (
    IncomingMessage,
    OutgoingMessage,
    Presence,
    Receipt,
    ReceiptType,
    SessionRef,
    TypingState,
)
from whatsgate.testing import FakeClock, settle

from .conftest import Sandbox

ANA = Jid.phone("5511987651001")
GROUP = Jid.group("120363025246125486")


async def test_a_send_is_acknowledged_then_delivered_then_read_after_the_delays(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    connection, recorder = await sandbox.paired()
    sent_at = clock.now()
    result = await connection.send(OutgoingMessage(to=ANA, kind=MessageKind.TEXT, text="Hi"))
    assert re.fullmatch("3EB0[0-9A-F]{18}", result.wa_id), result.wa_id
    assert result.timestamp == sent_at
    await clock.advance(0.9)
    assert recorder.events == []
    await clock.advance(0.1)
    assert [(r.type, r.wa_ids, r.chat) for r in recorder.of(Receipt)] == [
        (ReceiptType.DELIVERED, (result.wa_id,), ANA)
    ]
    await clock.advance(1.9)
    assert len(recorder.events) == 1
    await clock.advance(0.1)
    receipts: list[Receipt] = recorder.of(Receipt)
    assert [r.type for r in receipts] == [ReceiptType.DELIVERED, ReceiptType.READ]
    assert receipts[1].timestamp == sent_at + timedelta(seconds=3)
    assert [o.result for o in sandbox.engine.outbound["s1"]] == [result]


async def test_reactions_edits_and_revokes_get_no_receipts(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    connection, recorder = await sandbox.paired()
    await connection.send(
        OutgoingMessage(to=ANA, kind=MessageKind.REACTION, text="👍", target_wa_id="3A1")
    )
    await connection.send(
        OutgoingMessage(to=ANA, kind=MessageKind.TEXT, text="x", target_wa_id="3A1", is_edit=True)
    )
    await clock.advance(10)
    assert recorder.events == []
    assert len(sandbox.engine.outbound["s1"]) == 2


async def test_a_send_to_a_number_without_whatsapp_stays_at_one_tick(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    connection, recorder = await sandbox.paired()
    nobody = Jid.phone("+1 415 555 0000")
    result = await connection.send(OutgoingMessage(to=nobody, kind=MessageKind.TEXT, text="Hi"))
    assert result.wa_id.startswith("3EB0")
    await clock.advance(60)
    assert recorder.of(Receipt) == []
    [check] = await connection.check_numbers([nobody.user])
    assert check.exists is False


async def test_sending_needs_a_paired_connection(sandbox: Sandbox) -> None:
    connection, _ = await sandbox.open()
    message = OutgoingMessage(to=ANA, kind=MessageKind.TEXT, text="Hi")
    with pytest.raises(SessionNotConnected):
        await connection.send(message)
    await sandbox.engine.scan("s1")
    await connection.disconnect()
    with pytest.raises(SessionNotConnected):
        await connection.send(message)


async def test_check_numbers_every_valid_number_exists_but_those_ending_in_0000(
    sandbox: Sandbox,
) -> None:
    connection, _ = await sandbox.paired()
    checks = await connection.check_numbers(["+55 66 99628-5154", "+1 415 555 0000"])
    assert [(c.exists, c.jid) for c in checks] == [
        (True, Jid.phone("5566996285154")),
        (False, None),
    ]
    with pytest.raises(InvalidPhoneNumber):
        await connection.check_numbers(["12"])


async def test_read_marks_and_typing_are_accepted(sandbox: Sandbox) -> None:
    connection, _ = await sandbox.paired()
    await connection.mark_read(ANA, ANA, ["3A1", "3A2"])
    await connection.send_typing(ANA, TypingState.COMPOSING)
    assert connection.read_marks == [(ANA, ["3A1", "3A2"])]
    assert connection.typing_sent == [(ANA, TypingState.COMPOSING)]


async def _inbound(sandbox: Sandbox, spec: InboundSpec) -> IncomingMessage:
    connection, recorder = await sandbox.paired()
    wa_id = await sandbox.engine.inbound("s1", spec)
    messages: list[IncomingMessage] = recorder.of(IncomingMessage)
    assert [m.wa_id for m in messages] == [wa_id]
    assert connection.is_open
    return messages[0]


async def test_an_inbound_text_comes_from_the_contact_with_both_addresses(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    message = await _inbound(sandbox, InboundSpec(sender="+55 11 98765-1001", text="Olá"))
    assert (message.kind, message.text, message.chat, message.sender) == (
        MessageKind.TEXT,
        "Olá",
        ANA,
        ANA,
    )
    assert message.sender_alt is not None and message.sender_alt.is_lid
    assert message.from_me is False and message.timestamp == clock.now()
    assert message.push_name == "Ana Souza"
    assert message.wa_id.startswith("3A") and len(message.wa_id) == 20
    assert [c.jid for c in await sandbox.engine.connection("s1").contacts()] == [ANA]


async def test_an_explicit_id_is_kept_and_may_repeat(sandbox: Sandbox) -> None:
    connection, recorder = await sandbox.paired()
    spec = InboundSpec(sender="5511987651001", text="twice", id="3AEXPLICIT0001")
    assert await sandbox.engine.inbound("s1", spec) == "3AEXPLICIT0001"
    assert await sandbox.engine.inbound("s1", spec) == "3AEXPLICIT0001"
    assert [m.wa_id for m in recorder.of(IncomingMessage)] == ["3AEXPLICIT0001"] * 2
    with pytest.raises(InvalidInput):
        await sandbox.engine.inbound("s1", InboundSpec(sender="5511987651001", text="x", id=" "))
    assert connection.is_open


async def test_a_group_member_writes_in_the_group_by_lid(sandbox: Sandbox) -> None:
    message = await _inbound(
        sandbox, InboundSpec(sender="5511987651001", chat=str(GROUP), text="hello all")
    )
    assert message.chat == GROUP and message.chat_name == "Sandbox team"
    assert message.sender is not None and message.sender.is_lid
    assert message.sender_alt == ANA


async def test_inbound_media_keeps_its_bytes_for_download(sandbox: Sandbox) -> None:
    data = b"\x89PNG fake image bytes"
    message = await _inbound(
        sandbox,
        InboundSpec(sender="5511987651001", type="image", data=data, mime="image/png", text="pic"),
    )
    assert message.kind is MessageKind.IMAGE and message.text == "pic"
    media = message.media
    assert media is not None
    assert (media.mime, media.size, media.sha256) == (
        "image/png",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    connection = sandbox.engine.connection("s1")
    assert await connection.download_media(media) == data
    with pytest.raises(MediaNotFound):
        await connection.download_media(Media(mime="image/png", engine_ref="sandbox/none"))


@pytest.mark.parametrize(
    ("kind", "mime"),
    [
        ("video", "video/mp4"),
        ("audio", "audio/mpeg"),
        ("voice", "audio/ogg; codecs=opus"),
        ("document", "application/pdf"),
        ("sticker", "image/webp"),
    ],
)
async def test_every_media_kind_has_a_default_mime_and_placeholder_bytes(
    sandbox: Sandbox, kind: str, mime: str
) -> None:
    message = await _inbound(sandbox, InboundSpec(sender="5511987651001", type=kind))
    assert message.kind == MessageKind(kind)
    assert message.media is not None and message.media.mime == mime
    data = await sandbox.engine.connection("s1").download_media(message.media)
    assert len(data) == message.media.size and data


async def test_a_reaction_names_its_target(sandbox: Sandbox) -> None:
    message = await _inbound(
        sandbox, InboundSpec(sender="5511987651001", type="reaction", text="❤️", target_id="3A9")
    )
    assert (message.kind, message.text, message.target_wa_id) == (MessageKind.REACTION, "❤️", "3A9")


async def test_a_reply_quotes_its_message(sandbox: Sandbox) -> None:
    message = await _inbound(
        sandbox, InboundSpec(sender="5511987651001", text="yes", quoted_id="3EB0ABC")
    )
    assert (message.kind, message.quoted_wa_id) == (MessageKind.TEXT, "3EB0ABC")


async def test_a_location(sandbox: Sandbox) -> None:
    message = await _inbound(
        sandbox,
        InboundSpec(
            sender="5511987651001", type="location", latitude=-15.6, longitude=-56.1, name="Cuiabá"
        ),
    )
    assert message.kind is MessageKind.LOCATION
    assert message.location == Location(latitude=-15.6, longitude=-56.1, name="Cuiabá")


async def test_a_contact_card(sandbox: Sandbox) -> None:
    message = await _inbound(
        sandbox, InboundSpec(sender="5511987651001", type="contact", name="Bruno Lima")
    )
    assert message.kind is MessageKind.CONTACT and message.contact is not None
    assert message.contact.display_name == "Bruno Lima"
    assert "FN:Bruno Lima" in message.contact.vcard


async def test_a_poll(sandbox: Sandbox) -> None:
    message = await _inbound(
        sandbox,
        InboundSpec(sender="5511987651001", type="poll", text="Lunch?", options=("Yes", "No")),
    )
    assert message.kind is MessageKind.POLL and message.poll is not None
    assert (message.poll.question, message.poll.options) == ("Lunch?", ("Yes", "No"))


async def test_an_edit_and_a_revoke_name_their_target(sandbox: Sandbox) -> None:
    connection, recorder = await sandbox.paired()
    await sandbox.engine.inbound(
        "s1", InboundSpec(sender="5511987651001", type="edit", target_id="3A1", text="fixed")
    )
    await sandbox.engine.inbound(
        "s1", InboundSpec(sender="5511987651001", type="revoke", target_id="3A1")
    )
    edit, revoke = recorder.of(IncomingMessage)
    assert (edit.is_edit, edit.is_revoke, edit.target_wa_id, edit.text) == (
        True,
        False,
        "3A1",
        "fixed",
    )
    assert (revoke.is_edit, revoke.is_revoke, revoke.target_wa_id) == (False, True, "3A1")
    assert connection.is_open


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (InboundSpec(sender="5511987651001", type="fax"), InvalidInput),
        (InboundSpec(sender="5511987651001"), InvalidMessage),
        (InboundSpec(sender="5511987651001", text="   "), InvalidMessage),
        (InboundSpec(sender="5511987651001", type="reaction", text="👍"), InvalidMessage),
        (InboundSpec(sender="5511987651001", type="edit", target_id="3A1"), InvalidMessage),
        (InboundSpec(sender="5511987651001", type="revoke"), InvalidMessage),
        (InboundSpec(sender="5511987651001", type="location", latitude=1.0), InvalidMessage),
        (
            InboundSpec(sender="5511987651001", type="location", latitude=91.0, longitude=0.0),
            InvalidMessage,
        ),
        (InboundSpec(sender="5511987651001", type="contact"), InvalidMessage),
        (
            InboundSpec(sender="5511987651001", type="poll", text="?", options=("a",)),
            InvalidMessage,
        ),
        (InboundSpec(sender="123", text="x"), InvalidPhoneNumber),
        (InboundSpec(sender="x@nowhere", text="x"), InvalidJid),
        (InboundSpec(sender=str(GROUP), text="x"), InvalidInput),
        (InboundSpec(sender="5511987651001", chat="5511987651002", text="x"), InvalidInput),
    ],
)
async def test_bad_inbound_input_is_refused_with_a_domain_error(
    sandbox: Sandbox, spec: InboundSpec, error: type[Exception]
) -> None:
    _, recorder = await sandbox.paired()
    with pytest.raises(error):
        await sandbox.engine.inbound("s1", spec)
    assert recorder.events == []


async def test_inbound_needs_a_running_connected_session(sandbox: Sandbox) -> None:
    spec = InboundSpec(sender="5511987651001", text="x")
    with pytest.raises(SessionNotRunning):
        await sandbox.engine.inbound("s1", spec)
    await sandbox.open()
    with pytest.raises(SessionNotConnected):
        await sandbox.engine.inbound("s1", spec)


async def test_a_contact_types_in_a_chat_or_a_group(sandbox: Sandbox) -> None:
    _, recorder = await sandbox.paired()
    await sandbox.engine.typing("s1", "5511987651001")
    await sandbox.engine.typing("s1", "5511987651001", "paused", chat=str(GROUP))
    assert recorder.events == [
        Presence(chat=ANA, sender=ANA, state=TypingState.COMPOSING),
        Presence(chat=GROUP, sender=ANA, state=TypingState.PAUSED),
    ]
    with pytest.raises(InvalidInput):
        await sandbox.engine.typing("s1", "5511987651001", "dancing")
    with pytest.raises(SessionNotRunning):
        await sandbox.engine.typing("s2", "5511987651001")


async def test_an_inbound_the_gateway_fails_to_handle_is_reported_to_the_caller(
    sandbox: Sandbox,
) -> None:
    seen: list[object] = []

    async def failing_on_messages(event: object) -> None:
        seen.append(event)
        if isinstance(event, IncomingMessage) and len(seen) < 5:
            raise RuntimeError("database down")

    await sandbox.engine.open(SessionRef("s1"), failing_on_messages)
    await settle()
    await sandbox.engine.scan("s1")
    spec = InboundSpec(sender="5511987651001", text="x", id="3AFAIL")
    with pytest.raises(EngineError):
        await sandbox.engine.inbound("s1", spec)
    assert await sandbox.engine.inbound("s1", spec) == "3AFAIL"  # redelivered, then handled
    assert [type(e).__name__ for e in seen][-2:] == ["IncomingMessage", "IncomingMessage"]


async def test_events_reach_a_slow_listener_one_at_a_time_in_order(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    handled: list[str] = []
    in_flight = 0
    most = 0

    async def slow(event: object) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        if isinstance(event, IncomingMessage):
            handled.append(event.wa_id)
        in_flight -= 1

    await sandbox.engine.open(SessionRef("s1"), slow)
    await settle()
    await sandbox.engine.scan("s1")
    ids = [f"3AORDER{i:04d}" for i in range(20)]
    await asyncio.gather(
        *(
            sandbox.engine.inbound("s1", InboundSpec(sender="5511987651001", text="x", id=i))
            for i in ids
        )
    )
    assert handled == ids
    assert most == 1
