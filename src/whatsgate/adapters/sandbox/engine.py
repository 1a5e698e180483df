"""``SandboxEngine``: a simulated WhatsApp with no network at all.

It reports what neonize reports, through the same engine events, so the same use cases see the
same things; but the "phone" and the "contacts" are driven by its control API (the sandbox HTTP
endpoints call it): ``scan``, ``enter_pairing_code``, ``inbound``, ``typing``, ``faults``.

How it behaves, WhatsApp's way:

- An open session without stored credentials gets QR codes shaped like WhatsApp's
  (``2@<ref>,<noise key>,<identity key>,<adv secret>``), a new one on every rotation: the first
  valid ``qr_first`` seconds (60), each next one ``qr_next`` (20). It rotates until paired or
  until the connection is closed (the use cases' QR timeout closes it; unlike whatsmeow, the
  sandbox does not give up by itself after six codes).
- ``scan`` (or a requested pairing code, then ``enter_pairing_code``) pairs the session:
  credentials are written to ``<data_dir>/sandbox/<session id>.json``, then ``Paired`` and
  ``Connected`` are reported, then the optional history (``history_messages``). An open with
  stored credentials connects at once, without a QR. Logout and ``forget`` delete the file; a
  file that cannot be read is reported as ``CredentialsUnreadable``.
- A send is acknowledged at once (``SendResult``), then a ``delivered`` receipt after
  ``delivered_after`` seconds and a ``read`` receipt ``read_after`` seconds after the send.
  Reactions, edits and revokes get no receipts; receipts of a group send name no sender.
- Faults: fail the next N sends (``SendFailed``), drop the connection (``Disconnected``; the use
  cases reopen it), log the device out, ban it for a time (opens before the expiry are refused
  with ``Banned`` again), replace it by another client, reject the client as outdated (the next
  open gets ``ConnectFailed("client_outdated")``; a live connection is dropped so that next
  open comes).
- ``check_numbers``: every valid phone number has WhatsApp except those ending in ``0000``.
  A send to such a number is acknowledged (WhatsApp's server takes it) but never delivered
  nor read, as on WhatsApp: it stays at one tick.

Events of one connection reach the listener in order, one at a time, from one task; a
listener error is logged and the next event still comes. Every delay runs on the Clock port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import random
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from whatsgate.domain.errors import (
    EngineError,
    InvalidInput,
    InvalidMessage,
    MediaNotFound,
    SendFailed,
    SessionAlreadyConnected,
    SessionNotConnected,
    SessionNotRunning,
)
from whatsgate.domain.jid import Jid, normalize_phone
from whatsgate.domain.message import (
    MEDIA_KINDS,
    ContactCard,
    Location,
    Media,
    MessageKind,
    Poll,
)
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    ContactInfo,
    CredentialsUnreadable,
    Disconnected,
    EngineConnection,
    EngineEvent,
    EngineListener,
    HistoryBatch,
    IncomingMessage,
    LoggedOut,
    NumberCheck,
    OutgoingMessage,
    Paired,
    Presence,
    QrCode,
    Receipt,
    ReceiptType,
    Replaced,
    SendResult,
    SessionRef,
    TypingState,
    WhatsAppEngine,
)

from .credentials import Credentials, CredentialsError, CredentialStore
from .history import CONTACTS, GROUP, GROUP_NAME, build_history, history_contacts, lid_of
from .history import message_id as phone_message_id

log = logging.getLogger("whatsgate.sandbox")

#: The alphabet of WhatsApp's pairing codes (whatsmeow's "linking base32").
_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"
_DEFAULT_MIME = {
    MessageKind.IMAGE: "image/jpeg",
    MessageKind.VIDEO: "video/mp4",
    MessageKind.AUDIO: "audio/mpeg",
    MessageKind.VOICE: "audio/ogg; codecs=opus",
    MessageKind.DOCUMENT: "application/pdf",
    MessageKind.STICKER: "image/webp",
}
#: Sends remembered per session (for the sandbox's own inspection).
OUTBOUND_KEPT = 1000
#: Inbound ``type`` values besides the message kinds.
EDIT = "edit"
REVOKE = "revoke"
INBOUND_TYPES = tuple(
    sorted({*(str(k) for k in MessageKind if k is not MessageKind.UNSUPPORTED), EDIT, REVOKE})
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSettings:
    """Timing and behaviour of the simulated WhatsApp (seconds; shorten them in tests)."""

    #: Validity of the first QR code, then of each next one (WhatsApp: 60 s, then 20 s).
    qr_first: float = 60.0
    qr_next: float = 20.0
    #: After a send: the "delivered" receipt, and the "read" receipt (both from the send).
    delivered_after: float = 1.0
    read_after: float = 3.0
    #: Messages of history pushed on pairing (0: none), spread over ``history_days``.
    history_messages: int = 0
    history_days: int = 40
    #: Messages per ``HistoryBatch``.
    history_chunk: int = 100
    #: The phone that pairs when ``scan`` names none.
    default_phone: str = "5511999990001"
    push_name: str = "Sandbox Phone"

    def __post_init__(self) -> None:
        if self.qr_first <= 0 or self.qr_next <= 0:
            raise InvalidInput("QR validity must be positive.")
        if not 0 <= self.delivered_after <= self.read_after:
            raise InvalidInput("Receipts need 0 <= delivered_after <= read_after.")
        if self.history_messages < 0 or self.history_days < 1 or self.history_chunk < 1:
            raise InvalidInput("History needs messages >= 0, days >= 1 and chunk >= 1.")
        normalize_phone(self.default_phone)


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSpec:
    """What a contact (or a group member) sends; the body of ``POST …/sandbox/…/inbound``.

    ``type`` is a message kind (``text``, ``image``, ``video``, ``audio``, ``voice``,
    ``document``, ``sticker``, ``reaction``, ``location``, ``contact``, ``poll``) or ``edit`` /
    ``revoke``. ``text`` carries the text, a caption, the reaction emoji (empty removes it),
    the edited text or the poll question. A reply is any message with ``quoted_id``.
    """

    #: The sender ("from"): a phone number in any usual format, or a JID.
    sender: str
    type: str = "text"
    #: A group JID for a group message; a direct message needs none.
    chat: str | None = None
    text: str | None = None
    #: An explicit WhatsApp message id (to test idempotency); made up when absent.
    id: str | None = None
    push_name: str | None = None
    quoted_id: str | None = None
    #: The message reacted to, edited or revoked.
    target_id: str | None = None
    #: Media bytes (a small placeholder when absent), mime type and file name.
    data: bytes | None = None
    mime: str | None = None
    file_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    #: A location's name, or a shared contact's display name.
    name: str | None = None
    address: str | None = None
    vcard: str | None = None
    options: tuple[str, ...] = ()
    chat_name: str | None = None


class ConnectionState(StrEnum):
    PAIRING = "pairing"
    CONNECTED = "connected"
    #: WhatsApp refused the connection; it closes once the refusal is reported.
    REFUSED = "refused"
    CLOSED = "closed"


@dataclass
class _SessionState:
    """What the simulated WhatsApp remembers of an account across connections."""

    fail_sends: int = 0
    banned_until: datetime | None = None
    outdated: bool = False
    connection: SandboxConnection | None = None
    contacts: dict[Jid, ContactInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outbound:
    """A send the sandbox accepted (what the "contact" received)."""

    message: OutgoingMessage
    result: SendResult


_QueueItem = tuple[EngineEvent, asyncio.Future[Exception | None]] | None


class SandboxConnection(EngineConnection):
    """One session's simulated connection: a queue of events and the one task that delivers
    them to the listener, plus the timers (QR rotation, receipts, history) feeding it."""

    def __init__(
        self,
        engine: SandboxEngine,
        ref: SessionRef,
        listener: EngineListener,
        state: ConnectionState,
        account: Credentials | None,
    ) -> None:
        self.engine = engine
        self.ref = ref
        self.listener = listener
        self.state = state
        self.account = account
        self.pairing: tuple[str, str] | None = None  # (code, phone digits)
        self.read_marks: list[tuple[Jid, list[str]]] = []
        self.typing_sent: list[tuple[Jid, TypingState]] = []
        self._queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump = asyncio.create_task(
            self._deliver_all(), name=f"whatsgate:sandbox:{ref.session_id}"
        )

    @property
    def session_id(self) -> str:
        return self.ref.session_id

    @property
    def is_open(self) -> bool:
        return self.state is not ConnectionState.CLOSED

    # -- delivering events ----------------------------------------------------------------

    async def emit(self, event: EngineEvent) -> Exception | None:
        """Queue an event and return once the listener has handled it (or the connection
        closed), with the listener's error if it failed (already logged). Never call it from
        inside the listener: it would wait for itself."""
        if not self.is_open:
            return None
        done: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, done))
        return await done

    async def _deliver_all(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            event, done = item
            error: Exception | None = None
            try:
                if self.is_open:
                    await self.listener(event)
            except Exception as exc:
                error = exc
                log.exception(
                    "session %s: the listener failed on %s", self.session_id, type(event).__name__
                )
            finally:
                if not done.done():
                    done.set_result(error)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=f"whatsgate:sandbox:{self.session_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_timers(self) -> None:
        """Cancel the timers (QR rotation, receipts, history), except the one running this."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def close(self) -> None:
        """Stop the timers and let the delivering task end; events not yet delivered are
        dropped. Safe to call from inside the listener."""
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self.cancel_timers()
        self._queue.put_nowait(None)
        account = self.engine.state(self.session_id)
        if account.connection is self:
            account.connection = None

    async def wait_closed(self) -> None:
        """Shutdown: stop delivering now and release whoever waits on an emit."""
        self.close()
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_result(None)

    # -- timers ---------------------------------------------------------------------------

    async def run_qr_rotation(self) -> None:
        valid_for = self.engine.settings.qr_first
        while self.state is ConnectionState.PAIRING:
            code = self.engine.new_qr()
            await self.emit(QrCode(code=code, valid_for=timedelta(seconds=valid_for)))
            await self.engine.clock.sleep(valid_for)
            valid_for = self.engine.settings.qr_next

    async def run_refusal(self, event: EngineEvent) -> None:
        await self.emit(event)
        self.close()

    async def run_connected(self) -> None:
        account = self.account
        assert account is not None
        await self.emit(Connected(jid=account.jid, lid=account.lid, push_name=account.push_name))

    async def run_receipts(self, chat: Jid, wa_id: str) -> None:
        settings, clock = self.engine.settings, self.engine.clock
        sender = None if chat.is_group else chat
        await clock.sleep(settings.delivered_after)
        await self.emit(
            Receipt(
                chat=chat,
                sender=sender,
                wa_ids=(wa_id,),
                type=ReceiptType.DELIVERED,
                timestamp=clock.now(),
            )
        )
        await clock.sleep(settings.read_after - settings.delivered_after)
        await self.emit(
            Receipt(
                chat=chat,
                sender=sender,
                wa_ids=(wa_id,),
                type=ReceiptType.READ,
                timestamp=clock.now(),
            )
        )

    async def run_history(self, messages: list[IncomingMessage], *, with_contacts: bool) -> None:
        size = self.engine.settings.history_chunk
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)] or [[]]
        contacts = history_contacts() if with_contacts else ()
        done = 0
        for index, chunk in enumerate(chunks):
            done += len(chunk)
            first = index == 0
            await self.emit(
                HistoryBatch(
                    messages=tuple(chunk),
                    contacts=contacts if first else (),
                    lid_mappings=tuple((c.lid, c.jid) for c in contacts if c.lid) if first else (),
                    progress=round(100 * done / len(messages)) if messages else 100,
                    is_last=index == len(chunks) - 1,
                )
            )

    # -- the port -------------------------------------------------------------------------

    def require_connected(self) -> Credentials:
        if self.state is not ConnectionState.CONNECTED or self.account is None:
            raise SessionNotConnected(
                f"The sandbox connection is {self.state}.", session_id=self.session_id
            )
        return self.account

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.require_connected()
        account = self.engine.state(self.session_id)
        if account.fail_sends > 0:
            account.fail_sends -= 1
            raise SendFailed("sandbox: send failed (injected fault)", to=str(message.to))
        result = SendResult(wa_id=self.engine.new_send_id(), timestamp=self.engine.clock.now())
        sent = self.engine.outbound.setdefault(self.session_id, deque(maxlen=OUTBOUND_KEPT))
        sent.append(Outbound(message, result))
        acknowledged = not (
            message.kind is MessageKind.REACTION or message.is_edit or message.is_revoke
        )
        if acknowledged and has_whatsapp(message.to):
            self.spawn(self.run_receipts(message.to, result.wa_id), "receipts")
        return result

    async def mark_read(self, chat: Jid, sender: Jid | None, wa_ids: list[str]) -> None:
        self.require_connected()
        self.read_marks.append((chat, list(wa_ids)))

    async def send_typing(self, chat: Jid, state: TypingState) -> None:
        self.require_connected()
        self.typing_sent.append((chat, state))

    async def check_numbers(self, numbers: list[str]) -> list[NumberCheck]:
        """Every valid number has WhatsApp except those ending in ``0000``."""
        self.require_connected()
        checks = []
        for number in numbers:
            jid = Jid.phone(number)
            exists = has_whatsapp(jid)
            checks.append(NumberCheck(number=number, exists=exists, jid=jid if exists else None))
        return checks

    async def request_history(self, chat: Jid | None, count: int) -> None:
        """Older messages (before the pairing history's window), in one batch."""
        account = self.require_connected()
        if not 1 <= count <= 10_000:
            raise InvalidInput("Ask for 1 to 10000 messages of history.", count=count)
        settings = self.engine.settings
        messages = build_history(
            account=account.jid,
            end=self.engine.clock.now() - timedelta(days=settings.history_days),
            count=count,
            days=settings.history_days,
            rng=self.engine.rng,
            chat=chat,
        )
        self.spawn(self.run_history(messages, with_contacts=False), "history")

    async def download_media(self, media: Media) -> bytes:
        if not self.is_open:
            raise SessionNotConnected(session_id=self.session_id)
        blob = self.engine.media.get(media.engine_ref or "")
        if blob is None:
            raise MediaNotFound("The sandbox has no such media.", engine_ref=media.engine_ref)
        return blob

    async def pair_phone(self, phone: str) -> str:
        if self.state is ConnectionState.CONNECTED:
            raise SessionAlreadyConnected(session_id=self.session_id)
        if self.state is not ConnectionState.PAIRING:
            raise SessionNotConnected(session_id=self.session_id)
        digits = normalize_phone(phone)
        raw = "".join(self.engine.rng.choice(_CODE_ALPHABET) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        self.pairing = (code, digits)
        return code

    async def contacts(self) -> list[ContactInfo]:
        self.require_connected()
        return list(self.engine.state(self.session_id).contacts.values())

    async def logout(self) -> None:
        if not self.is_open:
            raise SessionNotConnected(session_id=self.session_id)
        self.engine.store.delete(self.session_id)
        self.close()

    async def disconnect(self) -> None:
        self.close()


class SandboxEngine(WhatsAppEngine):
    """The simulated WhatsApp: the engine port, plus the control API that plays the phone and
    the contacts (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        data_dir: Path | str,
        settings: SandboxSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings or SandboxSettings()
        self.store = CredentialStore(data_dir)
        self.rng = rng or random.Random()
        #: Bytes of inbound media, by ``Media.engine_ref``.
        self.media: dict[str, bytes] = {}
        #: The latest sends accepted, by session (the last ``OUTBOUND_KEPT``).
        self.outbound: dict[str, deque[Outbound]] = {}
        self._sessions: dict[str, _SessionState] = {}

    # -- the port -------------------------------------------------------------------------

    async def open(self, ref: SessionRef, listener: EngineListener) -> EngineConnection:
        sid = ref.session_id
        self.store.path(sid)  # a session id unfit for a file name fails here, not later
        previous = self.current(sid)
        if previous is not None:
            previous.close()
        state = self.state(sid)
        now = self.clock.now()
        refusal: EngineEvent | None = None
        account: Credentials | None = None
        try:
            account = self.store.load(sid)
        except CredentialsError as exc:
            refusal = CredentialsUnreadable(error=str(exc))
        if refusal is None and state.outdated:
            state.outdated = False
            refusal = ConnectFailed(reason="client_outdated")
        elif refusal is None and state.banned_until is not None and now < state.banned_until:
            refusal = Banned(code="101", expires_at=state.banned_until)
        if refusal is not None:
            connection_state = ConnectionState.REFUSED
        elif account is not None:
            connection_state = ConnectionState.CONNECTED
        else:
            connection_state = ConnectionState.PAIRING
        connection = SandboxConnection(self, ref, listener, connection_state, account)
        state.connection = connection
        if refusal is not None:
            connection.spawn(connection.run_refusal(refusal), "refusal")
        elif account is not None:
            connection.spawn(connection.run_connected(), "connect")
        else:
            connection.spawn(connection.run_qr_rotation(), "qr")
        return connection

    async def forget(self, ref: SessionRef) -> None:
        self.store.delete(ref.session_id)

    async def close(self) -> None:
        for state in self._sessions.values():
            if state.connection is not None:
                await state.connection.wait_closed()

    # -- inner workings -------------------------------------------------------------------

    def state(self, session_id: str) -> _SessionState:
        return self._sessions.setdefault(session_id, _SessionState())

    def current(self, session_id: str) -> SandboxConnection | None:
        """The session's open connection, if any."""
        found = self._sessions.get(session_id)
        connection = found.connection if found else None
        return connection if connection is not None and connection.is_open else None

    def connection(self, session_id: str) -> SandboxConnection:
        """The session's open connection, or ``SessionNotRunning``."""
        connection = self.current(session_id)
        if connection is None:
            raise SessionNotRunning(
                "The session has no open sandbox connection; start it first.",
                session_id=session_id,
            )
        return connection

    def new_qr(self) -> str:
        """A QR payload shaped like WhatsApp's: ``2@ref,noise key,identity key,adv secret``."""

        def b64(size: int) -> str:
            return base64.b64encode(self.rng.randbytes(size)).decode()

        return f"2@{b64(66)},{b64(32)},{b64(32)},{b64(32)}"

    def new_send_id(self) -> str:
        """An id as WhatsApp Web makes them for a send: ``3EB0`` + 18 hex digits."""
        # One draw of 72 bits, not 18 of a digit each: ~7 % of the outbox's drain to the
        # sandbox (bench/outbox.py) went to those draws.
        return f"3EB0{self.rng.getrandbits(72):018X}"

    def _learn(self, session_id: str, contact: ContactInfo) -> None:
        self.state(session_id).contacts[contact.jid] = contact

    # -- control: pairing -----------------------------------------------------------------

    async def scan(self, session_id: str, phone: str | None = None) -> Jid:
        """The phone scans the QR code: the session pairs with ``phone`` (the number a pairing
        code was asked for, else ``settings.default_phone``). Returns the account JID."""
        connection = self.connection(session_id)
        if connection.state is ConnectionState.CONNECTED:
            raise SessionAlreadyConnected(session_id=session_id)
        if connection.state is not ConnectionState.PAIRING:
            raise SessionNotConnected("WhatsApp refused this connection.", session_id=session_id)
        if phone is not None:
            digits = normalize_phone(phone)
        elif connection.pairing is not None:
            digits = connection.pairing[1]
        else:
            digits = normalize_phone(self.settings.default_phone)
        return await self._pair(connection, digits)

    async def enter_pairing_code(self, session_id: str, code: str) -> Jid:
        """The phone types the pairing code ``pair_phone`` gave: the session pairs with the
        number the code was asked for."""
        connection = self.connection(session_id)
        if connection.state is ConnectionState.CONNECTED:
            raise SessionAlreadyConnected(session_id=session_id)
        if connection.pairing is None:
            raise InvalidInput("No pairing code was asked for this session.")
        expected, digits = connection.pairing
        if _plain_code(code) != _plain_code(expected):
            raise InvalidInput("That pairing code is not the one this session showed.")
        return await self._pair(connection, digits)

    async def _pair(self, connection: SandboxConnection, digits: str) -> Jid:
        sid = connection.session_id
        jid = Jid(digits, Jid.USER_SERVER)
        account = Credentials(jid=jid, lid=lid_of(jid), push_name=self.settings.push_name)
        self.store.save(sid, account)
        connection.state = ConnectionState.CONNECTED
        connection.account = account
        connection.pairing = None
        connection.cancel_timers()  # the QR rotation
        await connection.emit(
            Paired(jid=jid, lid=account.lid, push_name=account.push_name, platform="sandbox")
        )
        await connection.emit(Connected(jid=jid, lid=account.lid, push_name=account.push_name))
        count = self.settings.history_messages
        if count and connection.is_open:
            rng = random.Random(f"history:{sid}")
            messages = build_history(
                account=jid,
                end=self.clock.now(),
                count=count,
                days=self.settings.history_days,
                rng=rng,
            )
            for contact in history_contacts():
                self._learn(sid, contact)
            connection.spawn(connection.run_history(messages, with_contacts=True), "history")
        log.info("session %s: sandbox paired with %s", sid, jid)
        return jid

    # -- control: contacts act ------------------------------------------------------------

    async def inbound(self, session_id: str, spec: InboundSpec) -> str:
        """A contact (or, with ``chat``, a group member) sends a message to the session.
        Returns once the gateway handled it, with the message's WhatsApp id; ``EngineError``
        when the gateway's listener failed on it."""
        connection = self.connection(session_id)
        connection.require_connected()
        message = self._incoming(session_id, spec)
        error = await connection.emit(message)
        if error is not None:
            raise EngineError(
                "The gateway failed to handle the message; WhatsApp would deliver it again.",
                wa_id=message.wa_id,
            ) from error
        return message.wa_id

    async def typing(
        self,
        session_id: str,
        sender: str,
        state: str | TypingState = TypingState.COMPOSING,
        chat: str | None = None,
    ) -> None:
        """A contact starts (``composing``, ``recording``) or stops (``paused``) typing."""
        connection = self.connection(session_id)
        connection.require_connected()
        try:
            typing_state = TypingState(state)
        except ValueError as exc:
            raise InvalidInput(
                f"Typing state must be one of {', '.join(TypingState)}.", state=str(state)
            ) from exc
        who = _contact_jid(sender)
        where = _group_jid(chat) if chat else who
        await connection.emit(Presence(chat=where, sender=who, state=typing_state))

    def _incoming(self, session_id: str, spec: InboundSpec) -> IncomingMessage:
        kind_name = spec.type.strip().lower()
        if kind_name not in INBOUND_TYPES:
            raise InvalidInput(
                f"Unknown message type {spec.type!r}; use one of {', '.join(INBOUND_TYPES)}.",
                field="type",
            )
        wa_id = _explicit_id(spec.id) if spec.id is not None else phone_message_id(self.rng)
        who = _contact_jid(spec.sender)
        phone = who if who.is_user else None
        lid = lid_of(who) if phone else who
        if spec.chat:
            chat = _group_jid(spec.chat)
            sender, sender_alt = lid, phone  # groups address members by LID
            chat_name = spec.chat_name or (GROUP_NAME if chat == GROUP else None)
        else:
            chat, sender, sender_alt, chat_name = who, who, (lid if phone else None), None
        push_name = spec.push_name or _default_name(who)
        self._learn(
            session_id, ContactInfo(jid=who, lid=lid if phone else None, push_name=push_name)
        )
        kind = MessageKind.TEXT
        text = spec.text
        media = location = contact = poll = None
        target = None
        is_edit = is_revoke = False
        if kind_name in (EDIT, REVOKE):
            target = _required(spec.target_id, "target_id", kind_name)
            is_edit, is_revoke = kind_name == EDIT, kind_name == REVOKE
            if is_edit:
                text = _required(spec.text, "text", kind_name)
        else:
            kind = MessageKind(kind_name)
        if kind is MessageKind.TEXT and not (is_edit or is_revoke):
            text = _required(spec.text, "text", kind_name)
        elif kind is MessageKind.REACTION:
            target = _required(spec.target_id, "target_id", kind_name)
            text = spec.text or ""
        elif kind in MEDIA_KINDS:
            data = spec.data if spec.data is not None else f"sandbox {kind}".encode()
            ref = f"sandbox/{session_id}/{wa_id}"
            self.media[ref] = data
            media = Media(
                mime=spec.mime or _DEFAULT_MIME[kind],
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                file_name=spec.file_name
                or ("document.pdf" if kind is MessageKind.DOCUMENT else None),
                engine_ref=ref,
            )
        elif kind is MessageKind.LOCATION:
            if spec.latitude is None or spec.longitude is None:
                raise InvalidMessage("A location needs latitude and longitude.")
            location = Location(
                latitude=spec.latitude,
                longitude=spec.longitude,
                name=spec.name,
                address=spec.address,
            )
        elif kind is MessageKind.CONTACT:
            name = _required(spec.name, "name", kind_name)
            contact = ContactCard(display_name=name, vcard=spec.vcard or _vcard(name))
        elif kind is MessageKind.POLL:
            question = _required(spec.text, "text", kind_name)
            if len(spec.options) < 2:
                raise InvalidMessage("A poll needs at least two options.")
            poll = Poll(question=question, options=tuple(spec.options))
        return IncomingMessage(
            wa_id=wa_id,
            chat=chat,
            sender=sender,
            sender_alt=sender_alt,
            push_name=push_name,
            timestamp=self.clock.now(),
            kind=kind,
            text=text,
            media=media,
            location=location,
            contact=contact,
            poll=poll,
            quoted_wa_id=spec.quoted_id,
            target_wa_id=target,
            is_edit=is_edit,
            is_revoke=is_revoke,
            chat_name=chat_name,
        )

    # -- control: faults ------------------------------------------------------------------

    async def faults(
        self,
        session_id: str,
        *,
        fail_sends: int | None = None,
        disconnect: bool = False,
        logout: bool = False,
        ban_seconds: float | None = None,
        replace: bool = False,
        outdated: bool = False,
    ) -> None:
        """Make WhatsApp misbehave for one session.

        - ``fail_sends``: the next N sends fail (``SendFailed``); 0 clears it.
        - ``disconnect``: the connection drops (``Disconnected("network")``).
        - ``logout``: the device is unlinked from the phone (``LoggedOut``; credentials gone).
        - ``ban_seconds``: a temporary ban (``Banned`` with the expiry); opens before it are
          refused the same way.
        - ``replace``: another client takes the account (``Replaced``).
        - ``outdated``: the next open is refused with ``ConnectFailed("client_outdated")``; a
          live connection drops so that the next open comes.

        At most one of disconnect, logout, ban, replace at a time; they need an open
        connection (``SessionNotRunning``)."""
        if fail_sends is not None and (
            isinstance(fail_sends, bool) or not isinstance(fail_sends, int) or fail_sends < 0
        ):
            raise InvalidInput("fail_sends must be a whole number, 0 or more.", field="fail_sends")
        if ban_seconds is not None and not ban_seconds > 0:
            raise InvalidInput("ban_seconds must be more than 0.", field="ban_seconds")
        ending = [
            name
            for name, on in (
                ("disconnect", disconnect),
                ("logout", logout),
                ("ban_seconds", ban_seconds is not None),
                ("replace", replace),
            )
            if on
        ]
        if len(ending) > 1:
            raise InvalidInput(f"Only one of {', '.join(ending)} at a time.")
        connection = self.connection(session_id) if ending else self.current(session_id)
        state = self.state(session_id)
        if fail_sends is not None:
            state.fail_sends = fail_sends
        if outdated:
            state.outdated = True
            if connection is not None and not ending:
                ending = ["disconnect"]
        if connection is None or not ending:
            return
        event: EngineEvent
        match ending[0]:
            case "disconnect":
                event = Disconnected(reason="network")
            case "logout":
                self.store.delete(session_id)
                event = LoggedOut(on_connect=False, reason="unlinked from the phone")
            case "ban_seconds":
                assert ban_seconds is not None
                state.banned_until = self.clock.now() + timedelta(seconds=ban_seconds)
                event = Banned(code="101", expires_at=state.banned_until)
            case _:
                event = Replaced()
        log.info("session %s: sandbox fault %s", session_id, ending[0])
        await connection.emit(event)
        connection.close()


def has_whatsapp(jid: Jid) -> bool:
    """The sandbox's rule: every phone number has WhatsApp except those ending in ``0000``
    (groups and hidden ids always reach someone)."""
    return not (jid.is_user and jid.user.endswith("0000"))


def _plain_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def _explicit_id(value: str) -> str:
    wa_id = value.strip()
    if not 1 <= len(wa_id) <= 128 or any(c.isspace() for c in wa_id):
        raise InvalidInput("A message id is 1 to 128 characters, no spaces.", field="id")
    return wa_id


def _contact_jid(value: str) -> Jid:
    jid = Jid.parse(value)
    if not (jid.is_user or jid.is_lid):
        raise InvalidInput(f"{value!r} is not a person's number or JID.", field="from")
    return jid


def _group_jid(value: str) -> Jid:
    jid = Jid.parse(value)
    if not jid.is_group:
        raise InvalidInput(f"{value!r} is not a group JID (…@g.us).", field="chat")
    return jid


def _required(value: str | None, name: str, kind: str) -> str:
    if value is None or not value.strip():
        raise InvalidMessage(f"A {kind} message needs {name}.", field=name)
    return value


def _default_name(jid: Jid) -> str:
    known = {c.jid: c.name for c in CONTACTS}
    return known.get(jid) or f"Contact {jid.user[-4:]}"


def _vcard(name: str) -> str:
    return f"BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nEND:VCARD"
