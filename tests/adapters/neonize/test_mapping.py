"""neonize's protobufs → engine events, and sends → neonize's protobufs (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.adapters.neonize import protos as p
from whatsgate.adapters.neonize import mapping
from whatsgate.adapters.neonize._runtime import e2e, npb
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import ContactCard, Location, MessageKind
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    Disconnected,
    IncomingMessage,
    LoggedOut,
    Paired,
    PairFailed,
    Receipt,
    ReceiptType,
    Replaced,
    TypingState,
)

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ALICE = Jid.phone(p.ALICE)
ME = Jid.phone(p.ME)
LID = Jid(p.ALICE_LID, "lid")
GROUP = Jid.group(p.GROUP)


def roundtrip(code: int, event: object) -> list[mapping.Mapped]:
    """As the Go side hands it over: serialized, parsed back, mapped."""
    parsed = mapping.parse_event(code, event.SerializeToString())  # type: ignore[attr-defined]
    return mapping.map_event(code, parsed, NOW, own=ME)


def incoming(content: object, **kwargs: object) -> IncomingMessage:
    [event] = roundtrip(mapping.MESSAGE, p.message_event(content, **kwargs))
    assert isinstance(event, IncomingMessage)
    return event


def test_a_direct_text_message() -> None:
    message = incoming(p.text("hello"))
    assert message.wa_id == "3EB0AAAA0001"
    assert (message.chat, message.sender, message.from_me) == (ALICE, ALICE, False)
    assert (message.kind, message.text, message.push_name) == (MessageKind.TEXT, "hello", "Alice")
    assert message.timestamp == datetime.fromtimestamp(p.TS, UTC)


def test_a_group_message_names_the_group_and_its_sender() -> None:
    message = incoming(p.text("hi all"), chat=p.jid(p.GROUP, "g.us"), group=True)
    assert (message.chat, message.sender) == (GROUP, ALICE)
    assert message.chat_alt is None


def test_a_message_sent_from_the_phone_is_from_me() -> None:
    message = incoming(p.text("sent from phone"), from_me=True)
    assert message.from_me
    assert message.sender == ME


def test_lid_addressing_keeps_both_addresses() -> None:
    message = incoming(
        p.text("from a lid"),
        chat=p.jid(p.ALICE_LID, "lid"),
        sender=p.jid(p.ALICE_LID, "lid", device=3),
        lid=True,
        sender_alt=p.jid(p.ALICE),
    )
    assert (message.chat, message.sender) == (LID, LID)
    assert (message.sender_alt, message.chat_alt) == (ALICE, ALICE)


def test_own_message_to_a_lid_chat_takes_the_recipient_alternate() -> None:
    message = incoming(
        p.text("to a lid"),
        chat=p.jid(p.ALICE_LID, "lid"),
        from_me=True,
        lid=True,
        recipient_alt=p.jid(p.ALICE),
    )
    assert message.chat_alt == ALICE


def test_a_reply_names_the_quoted_message() -> None:
    message = incoming(p.reply("yes", "3EB0QUOTED"))
    assert (message.kind, message.text, message.quoted_wa_id) == (
        MessageKind.TEXT,
        "yes",
        "3EB0QUOTED",
    )


def test_media_carries_its_metadata_and_a_download_handle() -> None:
    message = incoming(p.image("look"))
    assert (message.kind, message.text) == (MessageKind.IMAGE, "look")
    media = message.media
    assert media is not None
    assert (media.mime, media.size, media.width, media.height) == ("image/jpeg", 2048, 640, 480)
    assert media.sha256 == bytes(range(32)).hex()
    assert media.engine_ref is not None
    rebuilt = mapping.message_from_ref(media.engine_ref)
    assert rebuilt.imageMessage.directPath == "/v/t62/x"
    assert rebuilt.imageMessage.mediaKey == b"k" * 32
    assert not rebuilt.imageMessage.HasField("JPEGThumbnail")  # not needed to download


@pytest.mark.parametrize(
    ("content", "kind", "extra"),
    [
        (
            e2e.Message(videoMessage=e2e.VideoMessage(mimetype="video/mp4", seconds=7)),
            MessageKind.VIDEO,
            7,
        ),
        (
            e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/mpeg", seconds=3)),
            MessageKind.AUDIO,
            3,
        ),
        (
            e2e.Message(audioMessage=e2e.AudioMessage(mimetype="audio/ogg", PTT=True, seconds=2)),
            MessageKind.VOICE,
            2,
        ),
        (
            e2e.Message(stickerMessage=e2e.StickerMessage(mimetype="image/webp")),
            MessageKind.STICKER,
            None,
        ),
    ],
)
def test_every_media_kind(content: object, kind: MessageKind, extra: int | None) -> None:
    message = incoming(content)
    assert message.kind is kind
    assert message.media is not None
    assert message.media.duration_seconds == extra


def test_a_document_keeps_its_file_name_and_caption() -> None:
    content = e2e.Message(
        documentWithCaptionMessage=e2e.FutureProofMessage(
            message=e2e.Message(
                documentMessage=e2e.DocumentMessage(
                    mimetype="application/pdf", fileName="invoice.pdf", caption="the invoice"
                )
            )
        )
    )
    message = incoming(content)
    assert message.kind is MessageKind.DOCUMENT
    assert message.text == "the invoice"
    assert message.media is not None
    assert message.media.file_name == "invoice.pdf"


def test_location_contact_and_poll() -> None:
    location = incoming(
        e2e.Message(
            locationMessage=e2e.LocationMessage(
                degreesLatitude=-15.6, degreesLongitude=-56.1, name="Cuiabá"
            )
        )
    )
    assert location.location == Location(latitude=-15.6, longitude=-56.1, name="Cuiabá")
    card = incoming(
        e2e.Message(contactMessage=e2e.ContactMessage(displayName="Bob", vcard="BEGIN:VCARD"))
    )
    assert card.contact == ContactCard(display_name="Bob", vcard="BEGIN:VCARD")
    poll = incoming(
        e2e.Message(
            pollCreationMessageV3=e2e.PollCreationMessage(
                name="Lunch?",
                options=[e2e.PollCreationMessage.Option(optionName=o) for o in ("yes", "no")],
                selectableOptionsCount=1,
            )
        )
    )
    assert poll.kind is MessageKind.POLL
    assert poll.poll is not None
    assert (poll.poll.question, poll.poll.options) == ("Lunch?", ("yes", "no"))


def test_a_reaction_names_its_target_and_emoji() -> None:
    content = e2e.Message(
        reactionMessage=e2e.ReactionMessage(
            key=p.common.MessageKey(remoteJID=str(ALICE), fromMe=True, ID="3EB0TARGET"),
            text="👍",
        )
    )
    message = incoming(content)
    assert (message.kind, message.text, message.target_wa_id) == (
        MessageKind.REACTION,
        "👍",
        "3EB0TARGET",
    )


def test_an_edit_names_its_target_and_new_text() -> None:
    content = e2e.Message(
        editedMessage=e2e.FutureProofMessage(
            message=e2e.Message(
                protocolMessage=e2e.ProtocolMessage(
                    key=p.common.MessageKey(remoteJID=str(ALICE), fromMe=False, ID="3EB0OLD"),
                    type=e2e.ProtocolMessage.MESSAGE_EDIT,
                    editedMessage=p.text("fixed typo"),
                )
            )
        )
    )
    message = incoming(content, edit="1")
    assert message.is_edit
    assert not message.is_revoke
    assert (message.target_wa_id, message.text) == ("3EB0OLD", "fixed typo")


def test_a_revoke_names_its_target() -> None:
    content = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(
            key=p.common.MessageKey(remoteJID=str(ALICE), fromMe=False, ID="3EB0GONE"),
            type=e2e.ProtocolMessage.REVOKE,
        )
    )
    message = incoming(content, edit="7")
    assert message.is_revoke
    assert message.target_wa_id == "3EB0GONE"


def test_ephemeral_and_view_once_are_unwrapped() -> None:
    ephemeral = e2e.Message(ephemeralMessage=e2e.FutureProofMessage(message=p.text("poof")))
    assert incoming(ephemeral).text == "poof"
    view_once = e2e.Message(viewOnceMessageV2=e2e.FutureProofMessage(message=p.image("once")))
    once = incoming(view_once)
    assert (once.kind, once.text) == (MessageKind.IMAGE, "once")


def test_a_tapped_button_is_the_text_chosen() -> None:
    content = e2e.Message(
        buttonsResponseMessage=e2e.ButtonsResponseMessage(
            selectedDisplayText="Talk to sales", selectedButtonID="sales"
        )
    )
    message = incoming(content)
    assert (message.kind, message.text) == (MessageKind.TEXT, "Talk to sales")


def test_unknown_content_is_kept_as_unsupported() -> None:
    content = e2e.Message(groupInviteMessage=e2e.GroupInviteMessage(groupName="club"))
    message = incoming(content)
    assert message.kind is MessageKind.UNSUPPORTED
    assert message.unsupported_type == "groupInviteMessage"


@pytest.mark.parametrize(
    "content",
    [
        e2e.Message(
            protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.HISTORY_SYNC_NOTIFICATION)
        ),
        e2e.Message(senderKeyDistributionMessage=e2e.SenderKeyDistributionMessage(groupID="x")),
        e2e.Message(pollUpdateMessage=e2e.PollUpdateMessage()),
    ],
)
def test_protocol_traffic_is_not_a_message(content: object) -> None:
    assert roundtrip(mapping.MESSAGE, p.message_event(content)) == []


def test_status_updates_are_not_inbox_messages() -> None:
    event = p.message_event(p.text("story"), chat=p.jid("status", "broadcast"))
    assert roundtrip(mapping.MESSAGE, event) == []


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (npb.Receipt.DELIVERED, ReceiptType.DELIVERED),
        (npb.Receipt.READ, ReceiptType.READ),
        (npb.Receipt.PLAYED, ReceiptType.PLAYED),
        (npb.Receipt.SERVER_ERROR, ReceiptType.SERVER_ERROR),
    ],
)
def test_receipts(kind: int, expected: ReceiptType) -> None:
    [event] = roundtrip(mapping.RECEIPT, p.receipt(["A1", "A2"], kind))
    assert event == Receipt(
        chat=ALICE,
        sender=ALICE,
        wa_ids=("A1", "A2"),
        type=expected,
        timestamp=datetime.fromtimestamp(p.TS, UTC),
    )


def test_a_read_on_the_phone_is_a_read_by_the_account() -> None:
    event = p.receipt(["A1"], npb.Receipt.READ_SELF, sender=p.jid(p.ME, device=0))
    [receipt] = roundtrip(mapping.RECEIPT, event)
    assert isinstance(receipt, Receipt)
    assert (receipt.type, receipt.sender, receipt.chat) == (ReceiptType.READ, ME, ALICE)


@pytest.mark.parametrize("kind", [npb.Receipt.RETRY, npb.Receipt.INACTIVE, npb.Receipt.SENDER])
def test_protocol_receipts_are_not_ticks(kind: int) -> None:
    assert roundtrip(mapping.RECEIPT, p.receipt(["A1"], kind)) == []


@pytest.mark.parametrize(
    ("state", "media", "expected"),
    [
        (npb.ChatPresence.COMPOSING, npb.ChatPresence.TEXT, TypingState.COMPOSING),
        (npb.ChatPresence.COMPOSING, npb.ChatPresence.AUDIO, TypingState.RECORDING),
        (npb.ChatPresence.PAUSED, npb.ChatPresence.TEXT, TypingState.PAUSED),
    ],
)
def test_chat_presence(state: int, media: int, expected: TypingState) -> None:
    [event] = roundtrip(mapping.CHAT_PRESENCE, p.chat_presence(state, media))
    assert getattr(event, "state", None) is expected


def test_lifecycle_events() -> None:
    assert roundtrip(mapping.PAIR_STATUS, p.pair_success()) == [Paired(jid=ME, platform="android")]
    assert roundtrip(mapping.PAIR_STATUS, p.pair_error("bad signature")) == [
        PairFailed(reason="bad signature")
    ]
    assert roundtrip(mapping.CONNECTED, p.connected()) == [Connected()]
    assert roundtrip(mapping.DISCONNECTED, p.disconnected()) == [Disconnected(reason="network")]
    assert roundtrip(mapping.KEEPALIVE_TIMEOUT, p.keepalive_timeout()) == [
        Disconnected(reason="keepalive_timeout")
    ]
    assert roundtrip(mapping.LOGGED_OUT, p.logged_out(on_connect=True)) == [
        LoggedOut(on_connect=True, reason="logged_out")
    ]
    assert roundtrip(mapping.STREAM_REPLACED, p.stream_replaced()) == [Replaced()]
    assert roundtrip(mapping.QR, p.qr("2@a", "2@b")) == [mapping.QrCodes(("2@a", "2@b"))]


def test_a_temporary_ban_says_why_and_until_when() -> None:
    [event] = roundtrip(mapping.TEMPORARY_BAN, p.temporary_ban(expire=3600))
    assert event == Banned(code="send_to_too_many_people", expires_at=NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("CLIENT_OUTDATED", ConnectFailed(reason="client_outdated")),
        ("BAD_USER_AGENT", ConnectFailed(reason="bad_user_agent")),
        ("MAIN_DEVICE_GONE", LoggedOut(on_connect=True, reason="main_device_gone")),
        ("SERVICE_UNAVAILABLE", Disconnected(reason="connect_failure:service_unavailable")),
    ],
)
def test_connect_failures(reason: str, expected: object) -> None:
    assert roundtrip(mapping.CONNECT_FAILURE, p.connect_failure(reason)) == [expected]


def test_client_outdated_event() -> None:
    event = npb.ClientOutdated()
    assert roundtrip(mapping.CLIENT_OUTDATED, event) == [ConnectFailed(reason="client_outdated")]


def test_history_sync_brings_messages_names_and_lid_pairs() -> None:
    alice = f"{p.ALICE}@s.whatsapp.net"
    group = f"{p.GROUP}@g.us"
    data = p.history(
        [
            p.conversation(
                alice,
                p.web_message("H1", alice, p.text("old hello")),
                p.web_message("H2", alice, p.text("my answer"), from_me=True),
                name="Alice Doe",
                lid=f"{p.ALICE_LID}@lid",
            ),
            p.conversation(
                group,
                p.web_message("H3", group, p.text("group talk"), participant=alice),
                name="Club",
            ),
        ],
        pushnames=[(alice, "Ali")],
        mappings=[(alice, f"{p.ALICE_LID}@lid")],
        progress=100,
    )
    [batch] = roundtrip(mapping.HISTORY_SYNC, data)
    assert isinstance(batch, mapping.HistoryBatch)
    assert [(m.wa_id, m.text, m.from_me, m.sender) for m in batch.messages] == [
        ("H1", "old hello", False, ALICE),
        ("H2", "my answer", True, ME),
        ("H3", "group talk", False, ALICE),
    ]
    assert batch.messages[0].chat_alt == LID
    assert batch.messages[2].chat_name == "Club"
    assert batch.lid_mappings == ((LID, ALICE),)
    [contact] = batch.contacts
    assert (contact.jid, contact.lid, contact.name, contact.push_name) == (
        ALICE,
        LID,
        "Alice Doe",
        "Ali",
    )
    assert (batch.progress, batch.is_last) == (100, True)


def test_contacts_from_the_contact_store() -> None:
    contacts = mapping.contacts_from_store([p.contact(p.ALICE, "Alice Doe", "Ali")])
    [alice] = contacts
    assert (alice.jid, alice.name, alice.push_name) == (ALICE, "Alice Doe", "Ali")


def test_own_identity_from_the_device() -> None:
    assert mapping.own_identity(p.device()) == Connected(jid=ME, lid=LID, push_name="Me")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (p.TS, datetime.fromtimestamp(p.TS, UTC)),
        (p.TS * 1000, datetime.fromtimestamp(p.TS, UTC)),
        (p.TS * 1_000_000, datetime.fromtimestamp(p.TS, UTC)),
        (0, NOW),
    ],
)
def test_timestamps_in_any_unit(value: int, expected: datetime) -> None:
    assert mapping.to_datetime(value, NOW) == expected


def test_device_jids_parse_with_agent_and_device() -> None:
    device = mapping.device_proto_jid("5566996285154.0:12@s.whatsapp.net")
    assert (device.User, device.RawAgent, device.Device, device.Server) == (
        p.ME,
        0,
        12,
        "s.whatsapp.net",
    )
    assert mapping.parse_jid("5566996285154:12@s.whatsapp.net") == ME
    assert mapping.parse_jid("271234567890123@hosted.lid") == LID
    assert mapping.parse_jid("garbage") is None


# -- sending ------------------------------------------------------------------------------


def test_plain_text_is_sent_as_conversation_not_extended_text() -> None:
    message = mapping.text_message("hi")
    assert message.conversation == "hi"
    assert not message.HasField("extendedTextMessage")


def test_a_reply_carries_the_quoted_id_and_sender() -> None:
    context = mapping.context_info("3EB0Q", ALICE)
    message = mapping.text_message("answer", context)
    info = message.extendedTextMessage.contextInfo
    assert (message.extendedTextMessage.text, info.stanzaID, info.participant) == (
        "answer",
        "3EB0Q",
        str(ALICE),
    )


def test_location_and_contact_sends() -> None:
    loc = mapping.location_message(Location(latitude=1.5, longitude=2.5, name="Here"))
    assert (loc.locationMessage.degreesLatitude, loc.locationMessage.name) == (1.5, "Here")
    card = mapping.contact_message(ContactCard(display_name="Bob", vcard="V"))
    assert (card.contactMessage.displayName, card.contactMessage.vcard) == ("Bob", "V")


def test_edit_and_revoke_sends() -> None:
    edit = mapping.edit_message(ALICE, "3EB0MINE", "new text")
    protocol = edit.editedMessage.message.protocolMessage
    assert protocol.type == e2e.ProtocolMessage.MESSAGE_EDIT
    assert (protocol.key.ID, protocol.editedMessage.conversation) == ("3EB0MINE", "new text")
    revoke = mapping.revoke_message(ALICE, ME, "3EB0MINE", ME)
    assert revoke.protocolMessage.type == e2e.ProtocolMessage.REVOKE
    assert (revoke.protocolMessage.key.ID, revoke.protocolMessage.key.fromMe) == (
        "3EB0MINE",
        True,
    )


def test_a_reply_context_lands_on_built_media() -> None:
    image = p.image("caption")
    mapping.attach_context(image, mapping.context_info("3EB0Q", None))
    assert image.imageMessage.contextInfo.stanzaID == "3EB0Q"
