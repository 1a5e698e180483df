"""One session's neonize client, and how its events reach the gateway.

neonize hands every whatsmeow event to a module-global loop as a task of its own, drops handler
exceptions and returns to Go at once. This connection replaces those callbacks on its client:

- events are parsed and mapped in the Go callback thread, then queued to one consumer task per
  session on the engine's loop, so a session's events reach the listener in order, one at a
  time, and a failing listener is logged, never lost silently;
- for messages and history the Go callback then *waits* (bounded by ``ack_timeout``) until the
  listener has returned, i.e. until the use case has committed;
- QR codes are shown one per rotation (60 s, then 20 s each), on timers cancelled by pairing,
  connection or close;
- after an event that ends the client (disconnected, logged out, replaced, banned, refused),
  the Go client is stopped so whatsmeow does not reconnect on its own: the use cases own the
  reconnect policy and reopen through ``WhatsAppEngine.open``.

Every call into Go goes through the process-wide gate (``_runtime.GATE``): start and stop are
exclusive, other calls shared. Calls that crash the process on a client Go does not know
(``get_me``, the contact store) are only made once Go has shown it knows the client.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from whatsgate.adapters.neonize import mapping
from whatsgate.adapters.neonize._runtime import GATE, ProcessGate, aioze_client, enums
from whatsgate.adapters.neonize.errors import FFMPEG_MISSING, is_store_error, translate
from whatsgate.domain.errors import (
    FeatureUnavailable,
    InvalidMessage,
    MediaNotFound,
    SessionNotConnected,
    WhatsgateError,
)
from whatsgate.domain.jid import Jid, normalize_phone
from whatsgate.domain.message import MEDIA_KINDS, Media, MessageKind
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    ContactInfo,
    ContactsBatch,
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
    PairFailed,
    QrCode,
    Replaced,
    SendResult,
    SessionRef,
    TypingState,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)

#: Pseudo event codes for what does not come as a neonize event.
LOGIN_STATUS = -1
START_FAILED = -2
REPORT = -3

_Item = tuple[int, list[mapping.Mapped], threading.Event | None]

_REMEMBERED_SENDERS = 5000

#: What ends the QR phase (a failed pairing does not: WhatsApp may go on rotating codes).
_QR_OVER = (Paired, Connected, LoggedOut, Replaced, Banned, ConnectFailed, Disconnected)


def _now() -> datetime:
    return datetime.now(UTC)


async def _ignore(_client: Any, _event: Any) -> None:  # pragma: no cover - never called
    return None


def login_status_events(status: str) -> list[mapping.Mapped]:
    """neonize's login status callback (the end of whatsmeow's QR channel)."""
    if status == "success":
        return []
    if status == "timeout":
        return [Disconnected(reason="qr_timeout")]
    if status == "err-client-outdated":
        return [ConnectFailed(reason="client_outdated")]
    if status == "err-scanned-without-multidevice":
        return [PairFailed(reason="scanned_without_multidevice")]
    return [PairFailed(reason=status or "pairing failed")]


class NeonizeConnection(EngineConnection):
    """The live connection of one session (one neonize client at a time)."""

    def __init__(
        self,
        *,
        ref: SessionRef,
        listener: EngineListener,
        loop: asyncio.AbstractEventLoop,
        ack_timeout: float = 5.0,
        gate: ProcessGate = GATE,
        forget: Callable[[SessionRef], Awaitable[None]] | None = None,
        qr_rotation_scale: float = 1.0,
        proxy: str | None = None,
    ) -> None:
        self.ref = ref
        #: Where whatsmeow connects through (``socks5://…`` or ``http://…``), when set.
        self._proxy = proxy
        self._listener = listener
        self._loop = loop
        self._ack_timeout = ack_timeout
        self._gate = gate
        self._forget = forget
        #: Multiplies the QR rotation delays (tests shorten them; WhatsApp's validity stays).
        self._qr_scale = qr_rotation_scale
        self.client: Any | None = None
        self.uuid = b""
        self.me: Jid | None = ref.jid
        self.lid: Jid | None = None
        self.push_name: str | None = None
        self.closed = False
        self.connected = False
        #: Go started this client (we called connect) …
        self._go_started = False
        #: … and showed it knows it (a callback arrived): only then are get_me & co. safe.
        self._registered = False
        self._stopped = False
        self._qr_over = False
        self._qr_shown: set[str] = set()
        self._qr_timers: list[asyncio.TimerHandle] = []
        self._qr_callbacks = 0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._pending_acks: set[threading.Event] = set()
        #: Who sent the messages seen lately (WhatsApp id → sender): a reply, reaction or
        #: revoke must name its target's sender, which the port does not always carry.
        self._senders: OrderedDict[str, Jid] = OrderedDict()
        self._acks_lock = threading.Lock()
        self.alive = asyncio.Event()
        self.connect_task: asyncio.Task[Any] | None = None

    # -- wiring ----------------------------------------------------------------------------

    def start_consumer(self) -> None:
        if self._consumer is None:
            self._consumer = self._loop.create_task(self._consume())

    def attach(self, client: Any, uuid: bytes) -> None:
        """Take over neonize's callbacks on ``client`` (before it connects)."""
        finalizer = getattr(client, "_stop_finalizer", None)
        if finalizer is not None:
            # neonize stops the Go client from the GC thread when the object dies: an unlocked
            # write to Go's maps at any time. We stop it ourselves, under the gate.
            finalizer.detach()
        client.uuid = uuid
        client.contact.uuid = uuid
        client.chat_settings.uuid = uuid
        client.event.list_func = dict.fromkeys(mapping.SUBSCRIBED, _ignore)
        client.event.execute = self._on_go_event
        client._NewAClient__onQr = self._on_go_qr
        client._NewAClient__onLoginStatus = self._on_go_login_status
        self.client = client
        self.uuid = uuid

    async def start(self, client: Any, uuid: bytes, *, grace: float) -> None:
        """Connect ``client``; hold the gate until Go has registered it (or ``grace`` passed)."""
        self.attach(client, uuid)
        await self._gate.begin_write()
        try:
            if self.closed or self._stopped:
                return
            self._go_started = True
            proxy = aioze_client.ProxySettings(proxy_address=self._proxy) if self._proxy else None
            task: asyncio.Task[Any] = await client.connect(proxy)
            self.connect_task = task
            task.add_done_callback(self._on_connect_done)
            with suppress(TimeoutError):
                await asyncio.wait_for(self.alive.wait(), grace)
        finally:
            self._gate.end_write()

    def report(self, event: EngineEvent) -> None:
        """An event the engine itself found (e.g. an unreadable device store)."""
        self._queue.put_nowait((REPORT, [event], None))

    # -- Go threads ------------------------------------------------------------------------

    def _signal_from_go(self) -> None:
        self._registered = True
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.alive.set)

    def _on_go_event(self, _uuid: bytes, binary: int, size: int, code: int) -> None:
        try:
            self._signal_from_go()
            if self.closed:
                return
            self.deliver(code, ctypes.string_at(binary, size))
        except Exception:
            log.exception(
                "session %s: failed to handle neonize event %s", self.ref.session_id, code
            )

    def deliver(self, code: int, data: bytes) -> None:
        """Map one serialized neonize event and hand it to the session's consumer.

        Runs in the Go callback thread. For messages and history it returns only once the
        listener has handled the event (or after ``ack_timeout``).
        """
        event = mapping.parse_event(code, data)
        if event is None:
            return
        if code == mapping.DEVICE:
            with suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._learn_identity, event)
            return
        if code == mapping.CONNECTED and self.client is not None:
            self.client.connected = True
        mapped = mapping.map_event(code, event, _now(), own=self.me)
        if not mapped and code not in mapping.TERMINAL:
            return
        done = threading.Event() if code in mapping.ACKED and mapped else None
        self._submit(code, mapped, done)
        if done is not None:
            if not done.wait(self._ack_timeout):
                log.warning(
                    "session %s: event %s not handled within %.1f s; neonize continues",
                    self.ref.session_id,
                    code,
                    self._ack_timeout,
                )
            with self._acks_lock:
                self._pending_acks.discard(done)

    def _submit(
        self, code: int, mapped: list[mapping.Mapped], done: threading.Event | None
    ) -> None:
        if done is not None:
            with self._acks_lock:
                self._pending_acks.add(done)
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (code, mapped, done))
        except RuntimeError:  # the loop is closed: nobody will handle it
            if done is not None:
                done.set()

    def _on_go_qr(self, _uuid: int, code_address: int) -> None:
        try:
            self._signal_from_go()
            code = ctypes.string_at(code_address).decode()
            valid = (
                mapping.FIRST_QR_VALIDITY if self._qr_callbacks == 0 else mapping.NEXT_QR_VALIDITY
            )
            self._qr_callbacks += 1
            self._submit(mapping.QR, [QrCode(code=code, valid_for=valid)], None)
        except Exception:
            log.exception("session %s: failed to handle a QR code", self.ref.session_id)

    def _on_go_login_status(self, _uuid: int, status_address: int) -> None:
        try:
            self._signal_from_go()
            status = ctypes.string_at(status_address).decode()
            self._submit(LOGIN_STATUS, login_status_events(status), None)
        except Exception:
            log.exception("session %s: failed to handle a login status", self.ref.session_id)

    def _on_connect_done(self, task: asyncio.Task[Any]) -> None:
        self.alive.set()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or self.closed:
            return
        text = str(exc) or type(exc).__name__
        log.info("session %s: neonize stopped: %s", self.ref.session_id, text)
        event: EngineEvent
        if is_store_error(text):
            event = CredentialsUnreadable(error=text)
        else:
            event = Disconnected(reason="network")
        self._queue.put_nowait((START_FAILED, [event], None))

    # -- the consumer (engine loop) ------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            code, events, done = item
            try:
                for event in events:
                    await self._handle(event)
                if (
                    code in mapping.TERMINAL
                    or code == START_FAILED
                    or (code == LOGIN_STATUS and events)
                ):
                    self.retire()
            except Exception:
                log.exception("session %s: failed to handle %s", self.ref.session_id, events)
            finally:
                if done is not None:
                    done.set()

    async def _handle(self, event: mapping.Mapped) -> None:
        if isinstance(event, mapping.QrCodes):
            await self._schedule_qr(event.codes)
            return
        if isinstance(event, QrCode):
            if self._qr_over or event.code in self._qr_shown:
                return
            self._qr_shown.add(event.code)
            await self._emit(event)
            return
        if isinstance(event, mapping.KeepAliveRestored):
            self.connected = True
            await self._emit(Connected(jid=self.me, lid=self.lid, push_name=self.push_name))
            return
        if isinstance(event, mapping.OfflineSyncDone):
            contacts = await self._read_contacts()
            if contacts:
                await self._emit(ContactsBatch(contacts=tuple(contacts)))
            return
        if isinstance(event, _QR_OVER):
            self._end_qr()
        if isinstance(event, Paired):
            self.me = event.jid
            self.lid = event.lid or self.lid
        if isinstance(event, IncomingMessage):
            self._remember(event)
        elif isinstance(event, HistoryBatch):
            for message in event.messages:
                self._remember(message)
        if isinstance(event, Connected):
            self.connected = True
            event = await self._identity()
        elif isinstance(event, Disconnected | LoggedOut | Replaced | Banned | ConnectFailed):
            self.connected = False
        await self._emit(event)

    def _remember(self, message: IncomingMessage) -> None:
        sender = self.me if message.from_me else message.sender
        if sender is None:
            return
        self._senders[message.wa_id] = sender
        self._senders.move_to_end(message.wa_id)
        while len(self._senders) > _REMEMBERED_SENDERS:
            self._senders.popitem(last=False)

    def _sender_of(self, wa_id: str | None, given: Jid | None) -> Jid | None:
        if given is not None or wa_id is None:
            return given
        return self._senders.get(wa_id)

    async def _emit(self, event: EngineEvent) -> None:
        # A message or history batch that failed to commit is tried again (a locked database
        # passes); other events are not worth repeating. Every failure is logged.
        attempts = 3 if isinstance(event, IncomingMessage | HistoryBatch) else 1
        for attempt in range(1, attempts + 1):
            if self.closed:
                return
            try:
                await self._listener(event)
                return
            except Exception:
                log.exception(
                    "session %s: the listener failed on %s (attempt %d of %d)",
                    self.ref.session_id,
                    type(event).__name__,
                    attempt,
                    attempts,
                )
            if attempt < attempts:
                await asyncio.sleep(0.2 * attempt)

    async def _schedule_qr(self, codes: Iterable[str]) -> None:
        if self._qr_over:
            return
        delay = 0.0
        for index, code in enumerate(codes):
            valid = mapping.FIRST_QR_VALIDITY if index == 0 else mapping.NEXT_QR_VALIDITY
            qr = QrCode(code=code, valid_for=valid)
            if index == 0:
                await self._handle(qr)
            else:
                item: _Item = (mapping.QR, [qr], None)
                self._qr_timers.append(
                    self._loop.call_later(delay * self._qr_scale, self._queue.put_nowait, item)
                )
            delay += valid.total_seconds()

    def _end_qr(self) -> None:
        self._qr_over = True
        for timer in self._qr_timers:
            timer.cancel()
        self._qr_timers.clear()

    def _learn_identity(self, device: Any) -> None:
        identity = mapping.own_identity(device)
        self.me = identity.jid or self.me
        self.lid = identity.lid or self.lid
        self.push_name = identity.push_name or self.push_name

    async def _identity(self) -> Connected:
        if self._live() and self.client is not None:
            try:
                async with self._gate.shared():
                    if self._live():
                        self._learn_identity(await self.client.get_me())
            except Exception:
                log.warning("session %s: could not read the account", self.ref.session_id)
        return Connected(jid=self.me, lid=self.lid, push_name=self.push_name)

    async def _read_contacts(self) -> list[ContactInfo]:
        if not self._live() or self.client is None:
            return []
        try:
            async with self._gate.shared():
                if not self._live():
                    return []
                raw = await self.client.contact.get_all_contacts()
        except Exception:
            log.warning("session %s: could not read the contact store", self.ref.session_id)
            return []
        return mapping.contacts_from_store(raw)

    # -- stopping ----------------------------------------------------------------------------

    def _live(self) -> bool:
        return self._go_started and self._registered and not self._stopped and not self.closed

    def retire(self) -> None:
        """Stop the Go client in the background (it is done; whatsmeow must not reconnect)."""
        if self._stop_task is None and not self._stopped:
            self._stop_task = self._loop.create_task(self._stop_go())

    async def _stop_go(self) -> None:
        async with self._gate.exclusive():
            if self._stopped:
                return
            self._stopped = True
            self.connected = False
            if not self._go_started or self.client is None:
                return
            try:
                await self.client.stop()
            except Exception:
                log.exception("session %s: neonize stop failed", self.ref.session_id)

    async def disconnect(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._end_qr()
        if self._stop_task is not None:
            await asyncio.shield(self._stop_task)
        await self._stop_go()
        self._release_acks()
        self._queue.put_nowait(None)
        # The listener may close its own connection (a logout handled in the consumer): the
        # consumer then ends by itself after the current event instead of being awaited.
        if self._consumer is not None and asyncio.current_task() is not self._consumer:
            done, _ = await asyncio.wait({self._consumer}, timeout=5)
            if not done:  # a listener that never returns: do not leave its task behind
                self._consumer.cancel()
        if self.connect_task is not None:
            await asyncio.wait({self.connect_task}, timeout=5)

    def _release_acks(self) -> None:
        with self._acks_lock:
            for done in self._pending_acks:
                done.set()
            self._pending_acks.clear()

    # -- calls into Go -----------------------------------------------------------------------

    def _client(self) -> Any:
        if self.closed or self.client is None or not self._live():
            raise SessionNotConnected("The WhatsApp connection of this session is not up.")
        return self.client

    @asynccontextmanager
    async def _call(self, action: str) -> AsyncIterator[Any]:
        client = self._client()
        async with self._gate.shared():
            if not self._live():
                raise SessionNotConnected("The WhatsApp connection of this session closed.")
            try:
                yield client
            except WhatsgateError:
                raise
            except Exception as exc:
                raise translate(exc, action) from exc

    async def send(self, message: OutgoingMessage) -> SendResult:
        if message.kind in (MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.VOICE) or (
            message.kind is MessageKind.STICKER
        ):
            _require_ffmpeg()
        action = "send"
        async with self._call(action) as client:
            proto = await self._build(client, message)
            response = await client.send_message(mapping.to_proto_jid(message.to), proto)
        if self.me is not None and response.ID:
            self._senders[response.ID] = self.me
        return SendResult(
            wa_id=response.ID, timestamp=mapping.to_datetime(response.Timestamp, _now())
        )

    async def _build(self, client: Any, message: OutgoingMessage) -> Any:
        quoted_sender = self._sender_of(message.quoted_wa_id, message.quoted_sender)
        context = mapping.context_info(message.quoted_wa_id, quoted_sender)
        if message.is_edit:
            if not message.target_wa_id or message.text is None:
                raise InvalidMessage("An edit needs the message to edit and its new text.")
            return mapping.edit_message(message.to, message.target_wa_id, message.text)
        if message.is_revoke:
            if not message.target_wa_id or self.me is None:
                raise InvalidMessage("A revoke needs the message to revoke.")
            sender = self._sender_of(message.target_wa_id, message.target_sender) or self.me
            return mapping.revoke_message(message.to, sender, message.target_wa_id, self.me)
        kind = message.kind
        if kind is MessageKind.REACTION:
            if not message.target_wa_id:
                raise InvalidMessage("A reaction needs the message it reacts to.")
            target_sender = self._sender_of(message.target_wa_id, message.target_sender) or (
                None if message.to.is_group else message.to
            )
            if target_sender is None:
                raise InvalidMessage("A reaction in a group needs the sender of its target.")
            return await client.build_reaction(
                mapping.to_proto_jid(message.to),
                mapping.to_proto_jid(target_sender),
                message.target_wa_id,
                message.text or "",
            )
        if kind is MessageKind.TEXT:
            return mapping.text_message(message.text or "", context)
        if kind is MessageKind.LOCATION and message.location is not None:
            return mapping.location_message(message.location, context)
        if kind is MessageKind.CONTACT and message.contact is not None:
            return mapping.contact_message(message.contact, context)
        if kind in MEDIA_KINDS:
            return mapping.attach_context(await self._build_media(client, message), context)
        raise FeatureUnavailable(f"The neonize engine cannot send {kind} messages.")

    async def _build_media(self, client: Any, message: OutgoingMessage) -> Any:
        data = message.media_data
        if not data:
            raise InvalidMessage(f"A {message.kind} message needs its media bytes.")
        caption = message.text or None
        media = message.media
        if message.kind is MessageKind.IMAGE:
            return await client.build_image_message(data, caption=caption)
        if message.kind is MessageKind.VIDEO:
            return await client.build_video_message(data, caption=caption)
        if message.kind in (MessageKind.AUDIO, MessageKind.VOICE):
            return await client.build_audio_message(data, ptt=message.kind is MessageKind.VOICE)
        if message.kind is MessageKind.STICKER:
            return await client.build_sticker_message(data)
        file_name = media.file_name if media else None
        return await client.build_document_message(
            data,
            caption=caption,
            title=file_name,
            filename=file_name,
            mimetype=media.mime if media else None,
        )

    async def mark_read(self, chat: Jid, sender: Jid | None, wa_ids: list[str]) -> None:
        if not wa_ids:
            return
        async with self._call("mark read") as client:
            await client.mark_read(
                *wa_ids,
                chat=mapping.to_proto_jid(chat),
                sender=mapping.to_proto_jid(sender or chat),
                receipt=enums.ReceiptType.READ,
            )

    async def send_typing(self, chat: Jid, state: TypingState) -> None:
        presence = (
            enums.ChatPresence.CHAT_PRESENCE_PAUSED
            if state is TypingState.PAUSED
            else enums.ChatPresence.CHAT_PRESENCE_COMPOSING
        )
        media = (
            enums.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
            if state is TypingState.RECORDING
            else enums.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )
        async with self._call("typing") as client:
            await client.send_chat_presence(mapping.to_proto_jid(chat), presence, media)

    async def check_numbers(self, numbers: list[str]) -> list[NumberCheck]:
        queries = {"+" + normalize_phone(number): number for number in numbers}
        if not queries:
            return []
        async with self._call("number check") as client:
            responses = await client.is_on_whatsapp(*queries)
        found = {response.Query: response for response in responses}
        checks = []
        for query, number in queries.items():
            response = found.get(query)
            exists = bool(response is not None and response.IsIn)
            jid = mapping.to_jid(response.JID) if exists and response is not None else None
            checks.append(NumberCheck(number=number, exists=exists, jid=jid))
        return checks

    async def request_history(self, chat: Jid | None, count: int) -> None:
        raise FeatureUnavailable(
            "neonize 0.5.2 cannot send the peer history request whatsmeow needs; WhatsApp pushes "
            "history on pairing instead."
        )

    async def download_media(self, media: Media) -> bytes:
        if not media.engine_ref:
            raise MediaNotFound("This media has no WhatsApp reference to download it from.")
        try:
            message = mapping.message_from_ref(media.engine_ref)
        except Exception as exc:
            raise MediaNotFound("The stored WhatsApp media reference is not readable.") from exc
        async with self._call("download") as client:
            data: bytes = await client.download_any(message)
        if not data:
            raise MediaNotFound("WhatsApp returned no data for this media.")
        return data

    async def pair_phone(self, phone: str) -> str:
        digits = normalize_phone(phone)
        async with self._call("pairing") as client:
            code: str = await client.PairPhone(digits, True)
        return code

    async def contacts(self) -> list[ContactInfo]:
        async with self._call("contacts") as client:
            raw = await client.contact.get_all_contacts()
        return mapping.contacts_from_store(raw)

    async def logout(self) -> None:
        """Unlink on WhatsApp when the client is up; forget the credentials in any case."""
        if self._live():
            try:
                async with self._call("logout") as client:
                    await client.logout()
            except WhatsgateError as exc:
                log.warning("session %s: logout on WhatsApp failed: %s", self.ref.session_id, exc)
        await self.disconnect()
        if self._forget is not None:
            await self._forget(self.ref)


def _require_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise FeatureUnavailable(FFMPEG_MISSING)


__all__ = ["NeonizeConnection", "login_status_events"]
