"""Pure translations between neonize's protobufs and the engine port's words.

Nothing here calls neonize's client or the Go runtime: each function takes protobufs (and the
current time where one is needed) and returns engine events, or builds the protobufs a send
needs. The connection feeds every event WhatsApp sends through ``map_event``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from whatsgate.adapters.neonize._runtime import builder, e2e, events, hsync, npb
from whatsgate.domain.errors import InvalidInput
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import ContactCard, Location, Media, MessageKind, Poll
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    ContactInfo,
    Disconnected,
    EngineEvent,
    HistoryBatch,
    IncomingMessage,
    LoggedOut,
    Paired,
    PairFailed,
    Presence,
    Receipt,
    ReceiptType,
    Replaced,
    TypingState,
)

EVENT_TO_INT: dict[Any, int] = events.EVENT_TO_INT
INT_TO_EVENT: dict[int, Any] = events.INT_TO_EVENT

log = logging.getLogger(__name__)

# -- event codes (neonize's numbering of whatsmeow events) ---------------------------------

DEVICE = EVENT_TO_INT[npb.Device]
QR = EVENT_TO_INT[npb.QR]
PAIR_STATUS = EVENT_TO_INT[npb.PairStatus]
CONNECTED = EVENT_TO_INT[npb.Connected]
KEEPALIVE_TIMEOUT = EVENT_TO_INT[npb.KeepAliveTimeout]
KEEPALIVE_RESTORED = EVENT_TO_INT[npb.KeepAliveRestored]
LOGGED_OUT = EVENT_TO_INT[npb.LoggedOut]
STREAM_REPLACED = EVENT_TO_INT[npb.StreamReplaced]
TEMPORARY_BAN = EVENT_TO_INT[npb.TemporaryBan]
CONNECT_FAILURE = EVENT_TO_INT[npb.ConnectFailure]
CLIENT_OUTDATED = EVENT_TO_INT[npb.ClientOutdated]
STREAM_ERROR = EVENT_TO_INT[npb.StreamError]
DISCONNECTED = EVENT_TO_INT[npb.Disconnected]
HISTORY_SYNC = EVENT_TO_INT[npb.HistorySync]
MESSAGE = EVENT_TO_INT[npb.Message]
RECEIPT = EVENT_TO_INT[npb.Receipt]
CHAT_PRESENCE = EVENT_TO_INT[npb.ChatPresence]
OFFLINE_SYNC_COMPLETED = EVENT_TO_INT[npb.OfflineSyncCompleted]

#: The events the adapter subscribes to (neonize only forwards subscribed ones).
SUBSCRIBED = (
    QR,
    PAIR_STATUS,
    CONNECTED,
    KEEPALIVE_TIMEOUT,
    KEEPALIVE_RESTORED,
    LOGGED_OUT,
    STREAM_REPLACED,
    TEMPORARY_BAN,
    CONNECT_FAILURE,
    CLIENT_OUTDATED,
    STREAM_ERROR,
    DISCONNECTED,
    HISTORY_SYNC,
    MESSAGE,
    RECEIPT,
    CHAT_PRESENCE,
    OFFLINE_SYNC_COMPLETED,
)

#: Events after which the Go client is done: the adapter stops it, so whatsmeow does not
#: reconnect on its own (our use cases own the reconnect policy) and its thread is freed.
TERMINAL = frozenset(
    {
        LOGGED_OUT,
        STREAM_REPLACED,
        TEMPORARY_BAN,
        CONNECT_FAILURE,
        CLIENT_OUTDATED,
        STREAM_ERROR,
        DISCONNECTED,
    }
)

#: Events whose callback waits until the listener has handled (committed) them.
ACKED = frozenset({MESSAGE, HISTORY_SYNC})

FIRST_QR_VALIDITY = timedelta(seconds=60)
NEXT_QR_VALIDITY = timedelta(seconds=20)


def parse_event(code: int, data: bytes) -> Any | None:
    """The protobuf of one neonize event, or None for an event we do not know."""
    event_type = INT_TO_EVENT.get(code)
    if event_type is None:
        return None
    return event_type.FromString(data)


@dataclass(frozen=True, slots=True)
class QrCodes:
    """WhatsApp's whole list of QR codes at once; the connection shows them in turn."""

    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OfflineSyncDone:
    """WhatsApp delivered what arrived while we were away: time to read the contact store."""


@dataclass(frozen=True, slots=True)
class KeepAliveRestored:
    """The connection answers keep-alives again after a timeout."""


Mapped = EngineEvent | QrCodes | OfflineSyncDone | KeepAliveRestored


# -- addresses and time ------------------------------------------------------------------

_SERVER_ALIASES = {"hosted": "s.whatsapp.net", "hosted.lid": "lid", "c.us": "s.whatsapp.net"}


def to_jid(proto: Any | None) -> Jid | None:
    """A domain Jid from neonize's JID protobuf; None when empty or not an address we keep."""
    if proto is None or not proto.User or not proto.Server:
        return None
    server = _SERVER_ALIASES.get(proto.Server, proto.Server)
    try:
        return Jid(proto.User, server)
    except InvalidInput:
        return None


def parse_jid(text: str | None) -> Jid | None:
    """A domain Jid from a JID string as WhatsApp writes it (``user.agent:device@server``)."""
    if not text or "@" not in text:
        return None
    user, _, server = text.partition("@")
    server = _SERVER_ALIASES.get(server, server)
    try:
        return Jid.parse(f"{user}@{server}")
    except InvalidInput:
        return None


def to_proto_jid(jid: Jid) -> Any:
    return npb.JID(
        User=jid.user, Server=jid.server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False
    )


def device_proto_jid(text: str) -> Any:
    """The full device JID (``user[.agent]:device@server``) as neonize's protobuf."""
    user_part, _, server = text.partition("@")
    user_part, _, device = user_part.partition(":")
    user, _, agent = user_part.partition(".")
    return npb.JID(
        User=user,
        Server=server,
        Device=int(device or 0),
        RawAgent=int(agent or 0),
        Integrator=0,
        IsEmpty=False,
    )


def to_datetime(value: int, now: datetime) -> datetime:
    """WhatsApp timestamps come in seconds, milliseconds or microseconds depending on the path."""
    if value <= 0:
        return now
    if value > 10**14:
        value_s = value / 1_000_000
    elif value > 10**11:
        value_s = value / 1000
    else:
        value_s = float(value)
    return datetime.fromtimestamp(value_s, UTC)


# -- message content ---------------------------------------------------------------------

_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "deviceSentMessage",
    "editedMessage",
    "lottieStickerMessage",
    "botInvokeMessage",
    "groupMentionedMessage",
)

#: Parts of a message that carry no content of their own.
_NOT_CONTENT = frozenset(
    {
        "messageContextInfo",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
    }
)

#: Content WhatsApp sends that is not a message for the inbox.
_SILENT = frozenset(
    {
        "pollUpdateMessage",
        "keepInChatMessage",
        "pinInChatMessage",
        "encReactionMessage",
        "encEventResponseMessage",
        "stickerSyncRmrMessage",
        "placeholderMessage",
        "secretEncryptedMessage",
        "call",
        "chat",
        "requestPhoneNumberMessage",
    }
)

_POLLS = (
    "pollCreationMessage",
    "pollCreationMessageV2",
    "pollCreationMessageV3",
    "pollCreationMessageV4",
    "pollCreationMessageV5",
    "pollCreationMessageV6",
)

_CHOICE_TEXT: dict[str, Any] = {
    "buttonsResponseMessage": lambda sub: sub.selectedDisplayText,
    "templateButtonReplyMessage": lambda sub: sub.selectedDisplayText,
    "listResponseMessage": lambda sub: sub.title or sub.singleSelectReply.selectedRowID,
    "interactiveResponseMessage": lambda sub: sub.body.text,
}

#: Media fields and what is left out of ``Media.engine_ref`` (not needed to download).
_MEDIA_FIELDS = {
    "imageMessage": MessageKind.IMAGE,
    "videoMessage": MessageKind.VIDEO,
    "ptvMessage": MessageKind.VIDEO,
    "audioMessage": MessageKind.AUDIO,
    "documentMessage": MessageKind.DOCUMENT,
    "stickerMessage": MessageKind.STICKER,
}
_REF_DROPPED = ("contextInfo", "JPEGThumbnail", "pngThumbnail", "streamingSidecar", "waveform")


@dataclass(slots=True, kw_only=True)
class Content:
    """What a WhatsApp message says, in the domain's words."""

    kind: MessageKind
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contact: ContactCard | None = None
    poll: Poll | None = None
    quoted_wa_id: str | None = None
    target_wa_id: str | None = None
    is_edit: bool = False
    is_revoke: bool = False
    unsupported_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def unwrap(message: Any) -> Any:
    """The message inside ephemeral, view-once, document-with-caption and edit envelopes."""
    for _ in range(8):
        for name in _WRAPPERS:
            if message.HasField(name) and message_has_inner(getattr(message, name)):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def message_has_inner(wrapper: Any) -> bool:
    return bool(wrapper.HasField("message"))


def media_ref(field_name: str, sub: Any) -> str:
    """An opaque handle from which ``download_media`` rebuilds the message to download."""
    copy = type(sub)()
    copy.CopyFrom(sub)
    for name in _REF_DROPPED:
        if name in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField(name)
    wrapper = e2e.Message()
    getattr(wrapper, field_name).CopyFrom(copy)
    return base64.b64encode(wrapper.SerializeToString()).decode("ascii")


def message_from_ref(engine_ref: str) -> Any:
    return e2e.Message.FromString(base64.b64decode(engine_ref))


def _opt(sub: Any, name: str) -> Any | None:
    if name in sub.DESCRIPTOR.fields_by_name and sub.HasField(name):
        return getattr(sub, name)
    return None


def _media(field_name: str, sub: Any) -> Media:
    sha = _opt(sub, "fileSHA256")
    seconds = _opt(sub, "seconds")
    return Media(
        mime=_opt(sub, "mimetype") or "application/octet-stream",
        size=_opt(sub, "fileLength"),
        sha256=sha.hex() if sha else None,
        file_name=_opt(sub, "fileName"),
        width=_opt(sub, "width"),
        height=_opt(sub, "height"),
        duration_seconds=seconds,
        engine_ref=media_ref(field_name, sub),
    )


def _quoted(sub: Any) -> str | None:
    context = _opt(sub, "contextInfo")
    if context is not None and context.stanzaID:
        return str(context.stanzaID)
    return None


def content_of(message: Any) -> Content | None:
    """The content of a WhatsApp message; None when it is not one for the inbox."""
    message = unwrap(message)
    names = [f.name for f, _ in message.ListFields() if f.name not in _NOT_CONTENT]
    if not names:
        return None
    name = names[0]
    sub = getattr(message, name)
    if name in _SILENT:
        return None
    if name == "conversation":
        return Content(kind=MessageKind.TEXT, text=str(sub))
    if name == "extendedTextMessage":
        return Content(kind=MessageKind.TEXT, text=sub.text, quoted_wa_id=_quoted(sub))
    if name in _MEDIA_FIELDS:
        kind = _MEDIA_FIELDS[name]
        if name == "audioMessage" and sub.PTT:
            kind = MessageKind.VOICE
        caption = _opt(sub, "caption")
        return Content(
            kind=kind, text=caption or None, media=_media(name, sub), quoted_wa_id=_quoted(sub)
        )
    if name in _CHOICE_TEXT:  # a tapped button or list row: what the person chose, as text
        chosen = _CHOICE_TEXT[name](sub)
        return Content(kind=MessageKind.TEXT, text=chosen or None, quoted_wa_id=_quoted(sub))
    if name == "reactionMessage":
        return Content(kind=MessageKind.REACTION, text=sub.text, target_wa_id=sub.key.ID or None)
    if name in ("locationMessage", "liveLocationMessage"):
        try:
            location = Location(
                latitude=sub.degreesLatitude,
                longitude=sub.degreesLongitude,
                name=_opt(sub, "name") or None,
                address=_opt(sub, "address") or None,
            )
        except InvalidInput:
            return Content(kind=MessageKind.UNSUPPORTED, unsupported_type=name)
        return Content(kind=MessageKind.LOCATION, location=location, quoted_wa_id=_quoted(sub))
    if name == "contactMessage":
        card = ContactCard(display_name=sub.displayName or "Contact", vcard=sub.vcard)
        return Content(kind=MessageKind.CONTACT, contact=card, quoted_wa_id=_quoted(sub))
    if name == "contactsArrayMessage":
        contacts = list(sub.contacts)
        display = sub.displayName or (contacts[0].displayName if contacts else "Contacts")
        card = ContactCard(display_name=display, vcard="\n".join(c.vcard for c in contacts))
        return Content(kind=MessageKind.CONTACT, contact=card, quoted_wa_id=_quoted(sub))
    if name in _POLLS:
        poll = Poll(
            question=sub.name,
            options=tuple(o.optionName for o in sub.options),
            selectable_count=sub.selectableOptionsCount or 1,
        )
        return Content(kind=MessageKind.POLL, text=sub.name, poll=poll)
    if name == "protocolMessage":
        return _protocol(sub)
    return Content(kind=MessageKind.UNSUPPORTED, unsupported_type=name)


def _protocol(pm: Any) -> Content | None:
    if pm.type == e2e.ProtocolMessage.REVOKE:
        return Content(kind=MessageKind.TEXT, target_wa_id=pm.key.ID or None, is_revoke=True)
    if pm.type == e2e.ProtocolMessage.MESSAGE_EDIT:
        new = content_of(pm.editedMessage)
        return Content(
            kind=new.kind if new else MessageKind.TEXT,
            text=new.text if new else None,
            target_wa_id=pm.key.ID or None,
            is_edit=True,
        )
    return None  # history-sync notices, key shares, ephemeral settings… not messages


def _incoming(
    content: Content,
    *,
    wa_id: str,
    chat: Jid,
    sender: Jid | None,
    sender_alt: Jid | None,
    chat_alt: Jid | None,
    from_me: bool,
    push_name: str | None,
    timestamp: datetime,
    chat_name: str | None = None,
) -> IncomingMessage:
    return IncomingMessage(
        wa_id=wa_id,
        chat=chat,
        sender=sender,
        sender_alt=sender_alt,
        chat_alt=chat_alt,
        from_me=from_me,
        push_name=push_name or None,
        timestamp=timestamp,
        kind=content.kind,
        text=content.text,
        media=content.media,
        location=content.location,
        contact=content.contact,
        poll=content.poll,
        quoted_wa_id=content.quoted_wa_id,
        target_wa_id=content.target_wa_id,
        is_edit=content.is_edit,
        is_revoke=content.is_revoke,
        unsupported_type=content.unsupported_type,
        chat_name=chat_name,
    )


def _is_status(chat: Jid) -> bool:
    return chat.server == "broadcast"


def incoming_message(event: Any, now: datetime) -> IncomingMessage | None:
    """A live message (``MessageEv``); None for what is not a message for the inbox."""
    info = event.Info
    source = info.MessageSource
    chat = to_jid(source.Chat)
    if chat is None or _is_status(chat) or not info.ID:
        return None
    content = content_of(event.Message)
    if content is None:
        return None
    sender = to_jid(source.Sender)
    sender_alt = to_jid(source.SenderAlt) if source.HasField("SenderAlt") else None
    chat_alt: Jid | None = None
    if not chat.is_group:
        alt = source.RecipientAlt if source.IsFromMe else source.SenderAlt
        chat_alt = to_jid(alt) if alt.User else None
        if chat_alt == chat:
            chat_alt = None
    if content.is_edit is False and info.Edit in ("7", "8") and content.target_wa_id:
        content.is_revoke = True
    return _incoming(
        content,
        wa_id=info.ID,
        chat=chat,
        sender=sender,
        sender_alt=sender_alt if sender_alt != sender else None,
        chat_alt=chat_alt,
        from_me=bool(source.IsFromMe),
        push_name=info.Pushname,
        timestamp=to_datetime(info.Timestamp, now),
    )


# -- the other live events -----------------------------------------------------------------

_RECEIPTS = {
    npb.Receipt.DELIVERED: ReceiptType.DELIVERED,
    npb.Receipt.READ: ReceiptType.READ,
    npb.Receipt.PLAYED: ReceiptType.PLAYED,
    npb.Receipt.SERVER_ERROR: ReceiptType.SERVER_ERROR,
    # The account read (or played) a chat on the phone or another device: a read by the
    # account itself, its sender is the account.
    npb.Receipt.READ_SELF: ReceiptType.READ,
    npb.Receipt.PLAYED_SELF: ReceiptType.PLAYED,
}


def receipt(event: Any, now: datetime) -> Receipt | None:
    """Ticks of messages we sent, and reads by the account on its other devices.

    Retries, inactive and peer receipts are not ticks.
    """
    kind = _RECEIPTS.get(event.Type)
    chat = to_jid(event.MessageSource.Chat)
    ids = tuple(str(i) for i in event.MessageIDs if i)
    if kind is None or chat is None or not ids:
        return None
    return Receipt(
        chat=chat,
        sender=to_jid(event.MessageSource.Sender),
        wa_ids=ids,
        type=kind,
        timestamp=to_datetime(event.Timestamp, now),
    )


def presence(event: Any) -> Presence | None:
    chat = to_jid(event.MessageSource.Chat)
    if chat is None:
        return None
    if event.State == npb.ChatPresence.COMPOSING:
        audio = event.Media == npb.ChatPresence.AUDIO
        state = TypingState.RECORDING if audio else TypingState.COMPOSING
    else:
        state = TypingState.PAUSED
    return Presence(chat=chat, sender=to_jid(event.MessageSource.Sender), state=state)


def pair_status(event: Any) -> Paired | PairFailed:
    jid = to_jid(event.ID) if event.HasField("ID") else None
    if event.Status == npb.PairStatus.SUCCESS and jid is not None:
        # PairSuccess carries no push name (only a business name); Connected brings it.
        return Paired(jid=jid, platform=event.Platform or None)
    return PairFailed(reason=event.Error or "pairing failed")


def _reason_name(value: int) -> str:
    try:
        return str(npb.ConnectFailureReason.Name(value)).lower()
    except ValueError:
        return f"code_{value}"


def logged_out(event: Any) -> LoggedOut:
    reason = _reason_name(event.Reason) if event.HasField("Reason") else None
    return LoggedOut(on_connect=bool(event.OnConnect), reason=reason)


def temporary_ban(event: Any, now: datetime) -> Banned:
    try:
        code = str(npb.TemporaryBan.TempBanReason.Name(event.Code)).lower()
    except ValueError:
        code = str(event.Code)
    expires_at: datetime | None = None
    if event.Expire > 10**9:  # an absolute time
        expires_at = to_datetime(event.Expire, now)
    elif event.Expire > 0:  # how long the ban lasts
        expires_at = now + timedelta(seconds=event.Expire)
    return Banned(code=code, expires_at=expires_at)


_LOGGED_OUT_REASONS = frozenset(
    {
        npb.ConnectFailureReason.Value("LOGGED_OUT"),
        npb.ConnectFailureReason.Value("MAIN_DEVICE_GONE"),
        npb.ConnectFailureReason.Value("UNKNOWN_LOGOUT"),
    }
)


def connect_failure(event: Any, now: datetime) -> EngineEvent:
    reason = event.Reason
    if reason == npb.ConnectFailureReason.Value("CLIENT_OUTDATED"):
        return ConnectFailed(reason="client_outdated")
    if reason == npb.ConnectFailureReason.Value("BAD_USER_AGENT"):
        return ConnectFailed(reason="bad_user_agent")
    if reason in _LOGGED_OUT_REASONS:
        return LoggedOut(on_connect=True, reason=_reason_name(reason))
    if reason == npb.ConnectFailureReason.Value("TEMP_BANNED"):
        return Banned(code=event.Message or None)
    # Generic, internal server error, service unavailable…: worth another try later.
    return Disconnected(reason=f"connect_failure:{_reason_name(reason)}")


def map_event(code: int, event: Any, now: datetime, own: Jid | None = None) -> list[Mapped]:
    """What one neonize event means for the gateway (often one engine event, sometimes none)."""
    mapped: Mapped | None
    if code == QR:
        mapped = QrCodes(tuple(event.Codes)) if event.Codes else None
    elif code == PAIR_STATUS:
        mapped = pair_status(event)
    elif code == CONNECTED:
        mapped = Connected()
    elif code == KEEPALIVE_TIMEOUT:
        mapped = Disconnected(reason="keepalive_timeout")
    elif code == KEEPALIVE_RESTORED:
        mapped = KeepAliveRestored()
    elif code == LOGGED_OUT:
        mapped = logged_out(event)
    elif code == STREAM_REPLACED:
        mapped = Replaced()
    elif code == TEMPORARY_BAN:
        mapped = temporary_ban(event, now)
    elif code == CONNECT_FAILURE:
        mapped = connect_failure(event, now)
    elif code == CLIENT_OUTDATED:
        mapped = ConnectFailed(reason="client_outdated")
    elif code == STREAM_ERROR:
        mapped = Disconnected(reason=f"stream_error:{event.Code or 'unknown'}")
    elif code == DISCONNECTED:
        mapped = Disconnected(reason="network")
    elif code == HISTORY_SYNC:
        mapped = history_batch(event.Data, own=own, now=now)
    elif code == MESSAGE:
        mapped = incoming_message(event, now)
    elif code == RECEIPT:
        mapped = receipt(event, now)
    elif code == CHAT_PRESENCE:
        mapped = presence(event)
    elif code == OFFLINE_SYNC_COMPLETED:
        mapped = OfflineSyncDone()
    else:
        mapped = None
    return [] if mapped is None else [mapped]


# -- history --------------------------------------------------------------------------------


def history_batch(data: Any, *, own: Jid | None, now: datetime) -> HistoryBatch:
    """One history-sync chunk: its messages, the push names and LID ↔ phone pairs it carries."""
    mappings: dict[Jid, Jid] = {}
    for pair in data.phoneNumberToLidMappings:
        _add_mapping(mappings, parse_jid(pair.lidJID), parse_jid(pair.pnJID))
    messages: list[IncomingMessage] = []
    contacts: dict[Jid, ContactInfo] = {}
    for conversation in data.conversations:
        chat = parse_jid(conversation.ID)
        if chat is None or _is_status(chat):
            continue
        lid = parse_jid(conversation.lidJID) if conversation.lidJID else None
        phone = parse_jid(conversation.pnJID) if conversation.pnJID else None
        _add_mapping(mappings, lid, phone)
        chat_alt = phone if chat.is_lid else (lid if chat.is_user else None)
        chat_name = conversation.name or conversation.displayName or None
        if chat_name and not chat.is_group:
            _merge_contact(contacts, ContactInfo(jid=chat, name=chat_name))
        for item in conversation.messages:
            incoming = history_message(
                item.message, chat=chat, chat_alt=chat_alt, chat_name=chat_name, own=own, now=now
            )
            if incoming is not None:
                messages.append(incoming)
    for pushname in data.pushnames:
        jid = parse_jid(pushname.ID)
        if jid is not None and pushname.pushname:
            _merge_contact(contacts, ContactInfo(jid=jid, push_name=pushname.pushname))
    phone_to_lid = {phone: lid for lid, phone in mappings.items()}
    with_lids = tuple(
        ContactInfo(
            jid=c.jid,
            lid=c.lid or phone_to_lid.get(c.jid),
            name=c.name,
            push_name=c.push_name,
            business_name=c.business_name,
        )
        for c in contacts.values()
    )
    progress = int(data.progress) if data.HasField("progress") else None
    is_last = (progress is not None and progress >= 100) or (
        data.syncType == hsync.HistorySync.ON_DEMAND
    )
    return HistoryBatch(
        messages=tuple(messages),
        contacts=with_lids,
        lid_mappings=tuple(mappings.items()),
        progress=progress,
        is_last=is_last,
    )


def _add_mapping(mappings: dict[Jid, Jid], lid: Jid | None, phone: Jid | None) -> None:
    if lid is not None and phone is not None and lid.is_lid and phone.is_user:
        mappings[lid] = phone


def _merge_contact(contacts: dict[Jid, ContactInfo], new: ContactInfo) -> None:
    old = contacts.get(new.jid)
    if old is None:
        contacts[new.jid] = new
        return
    contacts[new.jid] = ContactInfo(
        jid=new.jid,
        lid=new.lid or old.lid,
        name=new.name or old.name,
        push_name=new.push_name or old.push_name,
        business_name=new.business_name or old.business_name,
    )


def history_message(
    info: Any,
    *,
    chat: Jid,
    chat_alt: Jid | None,
    chat_name: str | None,
    own: Jid | None,
    now: datetime,
) -> IncomingMessage | None:
    """One ``WebMessageInfo`` of a history-sync conversation."""
    key = info.key
    if not key.ID or not info.HasField("message"):
        return None
    content = content_of(info.message)
    if content is None:
        return None
    from_me = bool(key.fromMe)
    sender: Jid | None
    sender_alt: Jid | None = None
    if from_me:
        sender = own
    elif chat.is_group:
        sender = parse_jid(key.participant or info.participant)
    else:
        sender, sender_alt = chat, chat_alt
    return _incoming(
        content,
        wa_id=key.ID,
        chat=chat,
        sender=sender,
        sender_alt=sender_alt,
        chat_alt=chat_alt,
        from_me=from_me,
        push_name=info.pushName,
        timestamp=to_datetime(info.messageTimestamp, now),
        chat_name=chat_name,
    )


def contacts_from_store(contacts: Iterable[Any]) -> list[ContactInfo]:
    """neonize's contact store (``client.contact.get_all_contacts()``) as contact infos."""
    result: list[ContactInfo] = []
    for contact in contacts:
        jid = to_jid(contact.JID)
        if jid is None:
            continue
        info = contact.Info
        result.append(
            ContactInfo(
                jid=jid,
                name=info.FullName or info.FirstName or None,
                push_name=info.PushName or None,
                business_name=info.BusinessName or None,
            )
        )
    return result


def own_identity(device: Any) -> Connected:
    """Who the account is, from neonize's ``Device`` (``get_me``)."""
    jid = to_jid(device.JID) if device.HasField("JID") else None
    lid = to_jid(device.LID) if device.HasField("LID") else None
    return Connected(jid=jid, lid=lid, push_name=device.PushName or None)


# -- sending ------------------------------------------------------------------------------


def context_info(quoted_wa_id: str | None, quoted_sender: Jid | None) -> Any | None:
    if not quoted_wa_id:
        return None
    context = e2e.ContextInfo(stanzaID=quoted_wa_id)
    if quoted_sender is not None:
        context.participant = str(quoted_sender)
    return context


def text_message(text: str, context: Any | None = None) -> Any:
    """Plain text goes as ``conversation``; only a reply needs ``extendedTextMessage``."""
    if context is None:
        return e2e.Message(conversation=text)
    return e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text=text, contextInfo=context))


def location_message(location: Location, context: Any | None = None) -> Any:
    sub = e2e.LocationMessage(
        degreesLatitude=location.latitude, degreesLongitude=location.longitude
    )
    if location.name:
        sub.name = location.name
    if location.address:
        sub.address = location.address
    if context is not None:
        sub.contextInfo.CopyFrom(context)
    return e2e.Message(locationMessage=sub)


def contact_message(card: ContactCard, context: Any | None = None) -> Any:
    sub = e2e.ContactMessage(displayName=card.display_name, vcard=card.vcard)
    if context is not None:
        sub.contextInfo.CopyFrom(context)
    return e2e.Message(contactMessage=sub)


def edit_message(chat: Jid, target_wa_id: str, text: str) -> Any:
    return builder.build_edit(to_proto_jid(chat), target_wa_id, e2e.Message(conversation=text))


def revoke_message(chat: Jid, sender: Jid, target_wa_id: str, own: Jid) -> Any:
    return builder.build_revoke(
        to_proto_jid(chat), to_proto_jid(sender), target_wa_id, to_proto_jid(own)
    )


def attach_context(message: Any, context: Any | None) -> Any:
    """Put a reply's context on the (single) content of a built media message."""
    if context is None:
        return message
    for descriptor, sub in message.ListFields():
        if "contextInfo" in descriptor.message_type.fields_by_name:
            sub.contextInfo.MergeFrom(context)
            break
    return message
