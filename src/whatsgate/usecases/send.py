"""Sending: SendMessage validates and queues (the outbox worker delivers); CheckNumbers asks
WhatsApp which numbers have an account, paced like a person would."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidJid,
    InvalidMessage,
    InvalidPhoneNumber,
    MessageNotFound,
    SessionNotConnected,
    SessionNotFound,
    SessionNotRunning,
    WhatsgateError,
    WriteConflict,
)
from whatsgate.domain.events import ConversationUpdated, MessageReceived
from whatsgate.domain.ids import new_id
from whatsgate.domain.jid import Jid, normalize_phone
from whatsgate.domain.message import (
    MEDIA_KINDS,
    ContactCard,
    Direction,
    Location,
    Media,
    Message,
    MessageKind,
    MessageStatus,
)
from whatsgate.domain.outbox import OutboxEntry
from whatsgate.domain.pacing import SendPacer
from whatsgate.domain.sending import check_media, check_text
from whatsgate.domain.session import Session
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import NumberCheck
from whatsgate.ports.media import MediaStore
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory
from whatsgate.usecases._chats import contact_for, conversation_for
from whatsgate.usecases._groups import Groups, fail_waiter
from whatsgate.usecases._races import again_if_raced
from whatsgate.usecases.access import visible_sender
from whatsgate.usecases.connections import SessionConnections

log = logging.getLogger("whatsgate.outbox")

#: Kinds WhatsApp shows no caption on.
_NO_CAPTION = frozenset({MessageKind.AUDIO, MessageKind.VOICE, MessageKind.STICKER})
_SENDABLE = MEDIA_KINDS | {
    MessageKind.TEXT,
    MessageKind.LOCATION,
    MessageKind.CONTACT,
    MessageKind.REACTION,
}
MAX_EMOJI = 16


def media_key(session_id: str, message_id: str) -> str:
    """Where a message's media bytes live in the MediaStore."""
    return f"{session_id}/{message_id}"


# -- send -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMedia:
    """Media to send, already decoded (the HTTP layer turns base64 or a URL into bytes)."""

    data: bytes
    mime: str
    file_name: str | None = None
    caption: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionSpec:
    #: The message reacted to: our id or its WhatsApp id.
    message_id: str
    #: Empty removes our reaction.
    emoji: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessageCommand:
    session_id: str
    #: A phone number in any usual format, or a JID (contact, LID or group).
    to: str
    kind: MessageKind
    text: str | None = None
    media: OutgoingMedia | None = None
    #: The message this one replies to: our id or its WhatsApp id.
    reply_to: str | None = None
    location: Location | None = None
    contact: ContactCard | None = None
    reaction: ReactionSpec | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessageResult:
    message: Message
    #: Pacing will hold this message back ("queued to avoid block").
    throttled: bool

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def status(self) -> MessageStatus:
        return self.message.status


@dataclass(slots=True)
class _Pending:
    """A send waiting for its group's unit of work."""

    command: SendMessageCommand
    principal: Principal | None
    message_id: str
    future: asyncio.Future[SendMessageResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True, slots=True)
class _Checked:
    """What a send's checks found, all it needs to be written."""

    session: Session
    kind: MessageKind
    to: Jid
    quoted: str | None
    target: str | None
    media: Media | None


class SendMessage:
    """Queue one message for sending and return at once.

    - The session must exist and be paired; it need not be connected now (the outbox holds
      the message until it is).
    - ``to`` is a phone number in any usual format or a contact, LID or group JID.
    - Each kind carries what it needs and nothing else: text (up to 65,536 characters);
      media of an allowed type within WhatsApp's size for the kind, with an optional caption
      (not on audio, voice or stickers); a location; a contact card; a reaction to a stored
      message. A reply quotes a stored, sent message of the same session.
    - The message is stored ``queued`` with an outbox entry, its media bytes in the
      MediaStore; the conversation (and contact) are created when new; ``message.new`` and
      ``conversation.updated`` are published; the outbox worker is woken.
    - ``throttled`` says pacing will hold the message back (the session is past its budget).
    - Group commit: sends made while another group is being written share the next unit of
      work (at most ``max_group``), each returning once its own message is committed; one
      that fails its checks fails alone. If the shared unit of work fails, its sends run
      again one by one. A send alone, and one with media (its bytes are stored before its
      writers' turn), has a unit of work of its own. A caller that stops waiting (a client
      gone) takes its send out of its group if the send's turn has not come yet.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        media: MediaStore,
        pacer: SendPacer,
        wake: asyncio.Event | None = None,
        *,
        max_group: int = 100,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.media = media
        self.pacer = pacer
        self.wake = wake
        self._groups: Groups[_Pending] = Groups(
            self._write_group, max_group=max_group, name="whatsgate:send"
        )

    async def __call__(
        self, command: SendMessageCommand, *, principal: Principal | None = None
    ) -> SendMessageResult:
        """With ``principal``, its right to send (``Access.sender``) is checked first, in the
        same unit of work as the send: one transaction and one read of the session.

        Sends that race for a conversation or contact that does not exist yet (the first
        messages to a new number, sent at once, or one sent as the number writes in) each
        create it; the database takes one, and the others fail on its unique key
        (``AlreadyExists``) having written nothing: they queue again, and find it
        (``again_if_raced``)."""
        message_id = new_id()  # the same on every attempt: so is the media's key
        if command.media is not None:
            return await self._alone(command, principal, message_id)
        pending = _Pending(command, principal, message_id)
        self._groups.submit(pending)
        return await pending.future

    async def _write_group(self, group: list[_Pending]) -> None:
        if len(group) > 1:
            try:
                outcomes = await self._queue_group(group)
            except Exception:
                log.info("a group of %d sends failed; each runs alone", len(group), exc_info=True)
            else:
                for pending, outcome in zip(group, outcomes, strict=True):
                    if isinstance(outcome, SendMessageResult):
                        self._queued(outcome)
                        if not pending.future.done():
                            pending.future.set_result(outcome)
                    elif outcome is not None:
                        fail_waiter(pending.future, outcome)
                return
        for pending in group:
            if pending.future.done():
                continue
            try:
                result = await self._alone(pending.command, pending.principal, pending.message_id)
            except Exception as exc:
                fail_waiter(pending.future, exc)
            else:
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _alone(
        self, command: SendMessageCommand, principal: Principal | None, message_id: str
    ) -> SendMessageResult:
        result = await again_if_raced(
            lambda: self._queue(command, principal, message_id),
            session_id=command.session_id,
            what="a send",
        )
        self._queued(result)
        return result

    async def _queue(
        self, command: SendMessageCommand, principal: Principal | None, message_id: str
    ) -> SendMessageResult:
        now = self.clock.now()
        async with self.uow() as uow:
            checked = await self._checked(uow, command, principal, message_id)
            result = await self._write(uow, command, checked, message_id, now)
            await uow.commit()
        return result

    async def _queue_group(
        self, group: list[_Pending]
    ) -> list[SendMessageResult | Exception | None]:
        """One unit of work for the group: each send's checks, then its writes, in order (a
        send sees those before it: the conversation the first to a new number created). A
        send whose checks fail has written nothing and fails alone; any other failure fails
        the group (its unit of work rolls back)."""
        now = self.clock.now()
        outcomes: list[SendMessageResult | Exception | None] = []
        sessions: dict[str, Session] = {}  # read once per group: a campaign is one session's
        async with self.uow() as uow:
            for pending in group:
                if pending.future.done():  # its caller stopped waiting: not sent
                    outcomes.append(None)
                    continue
                try:
                    checked = await self._checked(
                        uow, pending.command, pending.principal, pending.message_id, sessions
                    )
                except (AlreadyExists, WriteConflict):
                    raise  # the database ended the unit of work: the group runs again, alone
                except WhatsgateError as exc:
                    outcomes.append(exc)
                    continue
                outcomes.append(
                    await self._write(uow, pending.command, checked, pending.message_id, now)
                )
            await uow.commit()
        return outcomes

    async def _checked(
        self,
        uow: UnitOfWork,
        command: SendMessageCommand,
        principal: Principal | None,
        message_id: str,
        sessions: dict[str, Session] | None = None,
    ) -> _Checked:
        """Everything a send is refused for, read in ``uow`` before it writes; stores the
        media's bytes last. ``sessions``: those this unit of work read already, by id (a
        group's), the session added once it passed."""
        read = sessions.get(command.session_id) if sessions is not None else None
        found = None
        if principal is not None:
            found = await visible_sender(uow, principal, command.session_id, command.to, read=read)
        kind = _check_shape(command)
        to = _recipient(command.to)
        if found is None:
            found = read if read is not None else await uow.sessions.get(command.session_id)
        if found is None:
            raise SessionNotFound(session_id=command.session_id)
        session = found
        if not session.is_paired:
            raise SessionNotConnected(
                "The session is not paired with a WhatsApp account yet; pair it first.",
                session_id=session.id,
            )
        quoted = await _resolve(uow, session, command.reply_to, what="reply_to")
        target = None
        if command.reaction is not None:
            target = await _resolve(uow, session, command.reaction.message_id, "reaction")
        media = None
        if command.media is not None:  # before the writers' turn: file I/O holds none up
            media = await self._store_media(session, kind, message_id, command.media)
        if sessions is not None:
            sessions[session.id] = session
        return _Checked(session, kind, to, quoted, target, media)

    async def _write(
        self,
        uow: UnitOfWork,
        command: SendMessageCommand,
        checked: _Checked,
        message_id: str,
        now: datetime,
    ) -> SendMessageResult:
        session, kind, to = checked.session, checked.kind, checked.to
        # What follows reads the contact and conversation it then saves: no other writer's
        # change (an assignment, an arriving message) may land in between. The contact
        # first, as ingest reads them: on PostgreSQL both are locked in that order.
        await uow.begin_write()
        contact, contact_changed = None, False
        if not to.is_group:
            contact, contact_changed = await contact_for(uow, session, to, now)
        conversation, _ = await conversation_for(uow, session, to, now)
        message = Message(
            id=message_id,
            organization_id=session.organization_id,
            session_id=session.id,
            conversation_id=conversation.id,
            wa_id=None,
            chat=to,
            sender=session.jid,
            direction=Direction.OUT,
            kind=kind,
            text=_text_of(command),
            location=command.location,
            contact=command.contact,
            quoted_wa_id=checked.quoted,
            target_wa_id=checked.target,
            timestamp=now,
            status=MessageStatus.QUEUED,
            media=checked.media,
            created_at=now,
        )
        # Only as many queued messages as pacing's answer depends on are counted: the full
        # count grew with the session's queue on every send.
        needed = self.pacer.ahead_needed(session.id, now)
        ahead = await uow.outbox.pending_count(session.id, limit=needed) if needed else 0
        throttled = self.pacer.would_hold(session.id, now, ahead=ahead)
        entry = OutboxEntry(
            organization_id=session.organization_id,
            session_id=session.id,
            message_id=message.id,
            next_attempt_at=now,
            throttled=throttled,
            created_at=now,
            updated_at=now,
        )
        if contact is not None and contact_changed:
            await uow.contacts.save(contact)
        await uow.messages.save(message)
        await uow.outbox.add(entry)
        events: list[MessageReceived | ConversationUpdated] = [
            MessageReceived.of(message, now, conversation.assignee_id)
        ]
        if kind is not MessageKind.REACTION:
            conversation.register_message(message, now)
            events.append(ConversationUpdated.of(conversation, now))
        await uow.conversations.save(conversation)
        uow.events.add(*events)
        return SendMessageResult(message=message, throttled=throttled)

    def _queued(self, result: SendMessageResult) -> None:
        """A send committed: say so, and wake the outbox worker."""
        message = result.message
        log.info(
            "session %s: message %s queued (%s to %s%s)",
            message.session_id,
            message.id,
            message.kind,
            message.chat,
            ", held back by pacing" if result.throttled else "",
            extra={"session_id": message.session_id, "message_id": message.id},
        )
        if self.wake is not None:
            self.wake.set()

    async def _store_media(
        self, session: Session, kind: MessageKind, message_id: str, media: OutgoingMedia
    ) -> Media:
        mime = check_media(kind, media.mime, media.data)
        key = media_key(session.id, message_id)
        await self.media.put(key, media.data)
        return Media(
            mime=mime,
            size=len(media.data),
            sha256=hashlib.sha256(media.data).hexdigest(),
            file_name=media.file_name,
            storage_key=key,
        )


def _check_shape(command: SendMessageCommand) -> MessageKind:
    """Each kind with what it needs and nothing else."""
    kind = MessageKind(command.kind)
    if kind not in _SENDABLE:
        raise InvalidMessage(f"Messages of type {kind} cannot be sent.", field="type")
    given = {
        "media": command.media is not None,
        "location": command.location is not None,
        "contact": command.contact is not None,
        "reaction": command.reaction is not None,
    }
    needed = {
        MessageKind.LOCATION: "location",
        MessageKind.CONTACT: "contact",
        MessageKind.REACTION: "reaction",
    }.get(kind, "media" if kind in MEDIA_KINDS else None)
    if needed is not None and not given[needed]:
        raise InvalidMessage(f"A {kind} message needs {needed}.", field=needed)
    extra = sorted(name for name, present in given.items() if present and name != needed)
    if extra:
        raise InvalidMessage(f"A {kind} message carries no {', '.join(extra)}.", field=extra[0])
    caption = _text_of(command)
    if kind is MessageKind.TEXT:
        if not (command.text or "").strip():
            raise InvalidMessage("A text message needs some text.", field="text")
        check_text(command.text)
    elif kind in MEDIA_KINDS:
        if caption and kind in _NO_CAPTION:
            raise InvalidMessage(f"WhatsApp shows no caption on a {kind}.", field="caption")
        check_text(caption, what="caption")
    elif command.text:
        raise InvalidMessage(f"A {kind} message carries no text.", field="text")
    if kind is MessageKind.CONTACT and command.contact is not None:
        card = command.contact
        if not card.display_name.strip() or "BEGIN:VCARD" not in card.vcard.upper():
            raise InvalidMessage("A contact needs a name and a vCard.", field="contact")
    if command.reaction is not None:
        if len(command.reaction.emoji) > MAX_EMOJI:
            raise InvalidMessage("A reaction is one emoji.", field="reaction.emoji")
        if command.reply_to:
            raise InvalidMessage("A reaction is not a reply.", field="reply_to")
    return kind


def _text_of(command: SendMessageCommand) -> str | None:
    if command.reaction is not None:
        return command.reaction.emoji
    if command.media is not None and command.media.caption:
        if command.text and command.text != command.media.caption:
            raise InvalidMessage("Give the caption once (text or media.caption).", field="text")
        return command.media.caption
    return command.text or None


@functools.lru_cache(maxsize=4096)
def _recipient(to: str) -> Jid:
    """The address ``to`` names (a ``Jid`` is immutable, so one parse serves every send to
    the same text; a refused one raises again, as errors are not cached): parsing a phone
    number with ``phonenumbers`` was ~7 % of a send's CPU."""
    jid = Jid.parse(to)
    if not (jid.is_user or jid.is_lid or jid.is_group):
        raise InvalidJid(f"Messages go to a contact or a group, not to {jid}.", value=to)
    return jid


async def _resolve(uow: UnitOfWork, session: Session, ref: str | None, what: str) -> str | None:
    """The WhatsApp id of a stored, sent message of the session, by our id or its own."""
    if ref is None:
        return None
    found = await uow.messages.get(ref)
    if found is None or found.session_id != session.id:
        found = await uow.messages.get_by_wa_id(session.id, ref)
    if found is None:
        raise MessageNotFound(f"No message {ref!r} in this session ({what}).", field=what)
    if found.wa_id is None:
        raise InvalidMessage(f"Message {ref!r} is not sent yet ({what}).", field=what)
    return found.wa_id


# -- check numbers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckNumbersSettings:
    #: Numbers asked of WhatsApp in one request.
    batch_size: int = 20
    #: A random pause between requests of a session (seconds), so bulk checks look human.
    gap_min: float = 1.0
    gap_max: float = 3.0
    #: Numbers one call may check.
    max_numbers: int = 500

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_numbers < 1 or not 0 <= self.gap_min <= self.gap_max:
            raise InvalidInput("Number checks need positive sizes and 0 <= gap_min <= gap_max.")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckNumbersCommand:
    session_id: str
    numbers: tuple[str, ...]


class CheckNumbers:
    """Which phone numbers have WhatsApp, asked through the session's connection.

    - The session must be connected.
    - One answer per number given, in the same order; a number that is not a possible phone
      number answers ``exists: false`` without asking WhatsApp; repeats are asked once.
    - Numbers go to WhatsApp in small batches with a random pause between batches, also
      across calls of the same session (calls queue behind each other), so bulk checks do
      not look like spam.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        clock: Clock,
        settings: CheckNumbersSettings,
        rng: random.Random,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock
        self.settings = settings
        self.rng = rng
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_batch_at: dict[str, datetime] = {}

    async def __call__(self, command: CheckNumbersCommand) -> list[NumberCheck]:
        s = self.settings
        if len(command.numbers) > s.max_numbers:
            raise InvalidInput(f"Check at most {s.max_numbers} numbers at once.", field="numbers")
        sid = command.session_id
        async with self.uow() as uow:
            session = await uow.sessions.get(sid)
        if session is None:
            raise SessionNotFound(session_id=sid)
        if not session.is_connected:
            raise SessionNotConnected(session_id=sid)
        digits: dict[str, str | None] = {n: _digits(n) for n in command.numbers}
        wanted = list(dict.fromkeys(d for d in digits.values() if d is not None))
        found: dict[str, NumberCheck] = {}
        async with self._locks.setdefault(sid, asyncio.Lock()):
            for start in range(0, len(wanted), s.batch_size):
                batch = wanted[start : start + s.batch_size]
                await self._wait_turn(sid)
                try:
                    connection = self.connections.get(sid)
                except SessionNotRunning as exc:
                    raise SessionNotConnected(session_id=sid) from exc
                answers = await connection.check_numbers(batch)
                gap = self.rng.uniform(s.gap_min, s.gap_max)
                self._next_batch_at[sid] = self.clock.now() + timedelta(seconds=gap)
                by_number = {a.number: a for a in answers}
                for i, number in enumerate(batch):
                    hit = by_number.get(number) or (answers[i] if i < len(answers) else None)
                    if hit is not None:
                        found[number] = hit
        return _in_order(command.numbers, digits, found)

    async def _wait_turn(self, session_id: str) -> None:
        due = self._next_batch_at.get(session_id)
        if due is None:
            return
        wait = (due - self.clock.now()).total_seconds()
        if wait > 0:
            await self.clock.sleep(wait)


def _in_order(
    numbers: tuple[str, ...], digits: dict[str, str | None], found: dict[str, NumberCheck]
) -> list[NumberCheck]:
    answers = []
    for n in numbers:
        d = digits[n]
        hit = found.get(d) if d is not None else None
        answers.append(
            NumberCheck(number=n, exists=hit.exists, jid=hit.jid)
            if hit
            else NumberCheck(number=n, exists=False)
        )
    return answers


def _digits(number: str) -> str | None:
    try:
        return normalize_phone(number)
    except InvalidPhoneNumber:
        return None
