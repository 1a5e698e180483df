"""neonize's own event protobufs, built as its Go side fills them (every required field set)."""

from __future__ import annotations

from typing import Any

from whatsgate.adapters.neonize._runtime import common, e2e, hsync, npb, web

ME = "5566996285154"
ALICE = "5511987654321"
ALICE_LID = "271234567890123"
GROUP = "120363025246125486"
TS = 1_763_800_000  # 2025-11-22 08:26:40 UTC


def jid(user: str = "", server: str = "s.whatsapp.net", device: int = 0) -> Any:
    return npb.JID(
        User=user,
        Server=server if user else "",
        Device=device,
        RawAgent=0,
        Integrator=0,
        IsEmpty=not user,
    )


def source(
    chat: Any,
    sender: Any,
    *,
    from_me: bool = False,
    group: bool = False,
    lid: bool = False,
    sender_alt: Any | None = None,
    recipient_alt: Any | None = None,
) -> Any:
    return npb.MessageSource(
        Chat=chat,
        Sender=sender,
        IsFromMe=from_me,
        IsGroup=group,
        AddressingMode=npb.AddressingMode.Value("LID" if lid else "PN"),
        SenderAlt=sender_alt or jid(),
        RecipientAlt=recipient_alt or jid(),
        BroadcastListOwner=jid(),
    )


def message_event(
    content: Any,
    *,
    wa_id: str = "3EB0AAAA0001",
    chat: Any | None = None,
    sender: Any | None = None,
    from_me: bool = False,
    group: bool = False,
    lid: bool = False,
    sender_alt: Any | None = None,
    recipient_alt: Any | None = None,
    push_name: str = "Alice",
    timestamp: int = TS,
    edit: str = "",
) -> Any:
    chat = chat if chat is not None else jid(ALICE)
    sender = sender if sender is not None else (jid(ME) if from_me else jid(ALICE))
    info = npb.MessageInfo(
        MessageSource=source(
            chat,
            sender,
            from_me=from_me,
            group=group,
            lid=lid,
            sender_alt=sender_alt,
            recipient_alt=recipient_alt,
        ),
        ID=wa_id,
        ServerID=0,
        Type="text",
        Pushname=push_name,
        Timestamp=timestamp,
        Category="",
        Multicast=False,
        MediaType="",
        Edit=edit,
    )
    return npb.Message(
        Info=info,
        Message=content,
        IsEphemeral=False,
        IsViewOnce=False,
        IsViewOnceV2=False,
        IsViewOnceV2Extension=False,
        IsDocumentWithCaption=False,
        IsLottieSticker=False,
        IsEdit=bool(edit),
        UnavailableRequestID="",
        RetryCount=0,
    )


def text(body: str) -> Any:
    return e2e.Message(conversation=body)


def reply(body: str, quoted_id: str, participant: str = f"{ALICE}@s.whatsapp.net") -> Any:
    return e2e.Message(
        extendedTextMessage=e2e.ExtendedTextMessage(
            text=body,
            contextInfo=e2e.ContextInfo(
                stanzaID=quoted_id, participant=participant, quotedMessage=text("earlier")
            ),
        )
    )


def image(caption: str = "look") -> Any:
    return e2e.Message(
        imageMessage=e2e.ImageMessage(
            URL="https://mmg.whatsapp.net/x",
            mimetype="image/jpeg",
            caption=caption,
            fileSHA256=bytes(range(32)),
            fileLength=2048,
            height=480,
            width=640,
            mediaKey=b"k" * 32,
            fileEncSHA256=b"e" * 32,
            directPath="/v/t62/x",
            JPEGThumbnail=b"thumb" * 100,
        )
    )


def receipt(
    ids: list[str], kind: int, *, chat: Any | None = None, sender: Any | None = None
) -> Any:
    chat = chat if chat is not None else jid(ALICE)
    return npb.Receipt(
        MessageSource=source(chat, sender if sender is not None else chat),
        MessageIDs=ids,
        Timestamp=TS,
        Type=kind,
    )


def chat_presence(state: int, media: int = npb.ChatPresence.TEXT) -> Any:
    return npb.ChatPresence(MessageSource=source(jid(ALICE), jid(ALICE)), State=state, Media=media)


def qr(*codes: str) -> Any:
    return npb.QR(Codes=list(codes))


def pair_success(user: str = ME) -> Any:
    return npb.PairStatus(
        ID=jid(user, device=12), BusinessName="", Platform="android", Status=npb.PairStatus.SUCCESS
    )


def pair_error(error: str) -> Any:
    return npb.PairStatus(
        ID=jid(), BusinessName="", Platform="", Status=npb.PairStatus.ERROR, Error=error
    )


def connected() -> Any:
    return npb.Connected(status=True)


def disconnected() -> Any:
    return npb.Disconnected(status=True)


def logged_out(on_connect: bool = False, reason: str = "LOGGED_OUT") -> Any:
    return npb.LoggedOut(OnConnect=on_connect, Reason=npb.ConnectFailureReason.Value(reason))


def temporary_ban(code: int = npb.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, expire: int = 3600) -> Any:
    return npb.TemporaryBan(Code=code, Expire=expire)


def node() -> Any:
    return npb.Node(Tag="failure", Attrs=[], Nodes=[], Nil=False)


def connect_failure(reason: str, message: str = "") -> Any:
    return npb.ConnectFailure(
        Reason=npb.ConnectFailureReason.Value(reason), Message=message, Raw=node()
    )


def stream_replaced() -> Any:
    return npb.StreamReplaced()


def keepalive_timeout() -> Any:
    return npb.KeepAliveTimeout(ErrorCount=2, LastSuccess=TS)


def history(
    conversations: list[Any],
    *,
    pushnames: list[tuple[str, str]] = (),  # type: ignore[assignment]
    mappings: list[tuple[str, str]] = (),  # type: ignore[assignment]
    progress: int | None = None,
) -> Any:
    data = hsync.HistorySync(
        syncType=hsync.HistorySync.INITIAL_BOOTSTRAP,
        conversations=conversations,
        pushnames=[hsync.Pushname(ID=i, pushname=p) for i, p in pushnames],
        phoneNumberToLidMappings=[
            hsync.PhoneNumberToLIDMapping(pnJID=pn, lidJID=lid) for pn, lid in mappings
        ],
    )
    if progress is not None:
        data.progress = progress
    return npb.HistorySync(Data=data)


def conversation(chat: str, *messages: Any, name: str = "", lid: str = "", pn: str = "") -> Any:
    conv = hsync.Conversation(
        ID=chat,
        messages=[hsync.HistorySyncMsg(message=m, msgOrderID=i) for i, m in enumerate(messages)],
    )
    if name:
        conv.name = name
    if lid:
        conv.lidJID = lid
    if pn:
        conv.pnJID = pn
    return conv


def web_message(
    wa_id: str,
    chat: str,
    content: Any,
    *,
    from_me: bool = False,
    participant: str = "",
    timestamp: int = TS,
) -> Any:
    key = common.MessageKey(remoteJID=chat, fromMe=from_me, ID=wa_id)
    if participant:
        key.participant = participant
    return web.WebMessageInfo(
        key=key, message=content, messageTimestamp=timestamp, pushName="Alice"
    )


def contact(user: str, full_name: str = "", push_name: str = "") -> Any:
    return npb.Contact(
        JID=jid(user),
        Info=npb.ContactInfo(
            Found=True,
            FirstName=full_name.split(" ")[0] if full_name else "",
            FullName=full_name,
            PushName=push_name,
            BusinessName="",
            RedactedPhone="",
        ),
    )


def device(user: str = ME, lid: str = ALICE_LID, push_name: str = "Me") -> Any:
    return npb.Device(
        JID=jid(user, device=12),
        LID=jid(lid, "lid"),
        Platform="android",
        BussinessName="",
        PushName=push_name,
        Initialized=True,
    )
