"""``FakeEngine``: a WhatsApp engine a test scripts by hand.

By default it behaves like WhatsApp: a session without credentials gets a QR code as soon as it
opens; a paired one connects. The test then drives it: ``rotate_qr``, ``scan``, ``drop``,
``log_out``, ``ban``, ``replace``, ``reject_outdated``, ``emit`` any engine event. Each of these
returns once the listener (the gateway) has handled the event.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from whatsgate.domain.errors import RateLimited, SendFailed, SessionNotConnected
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Media
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
    LoggedOut,
    NumberCheck,
    OutgoingMessage,
    Paired,
    QrCode,
    Replaced,
    SendResult,
    SessionRef,
    TypingState,
    WhatsAppEngine,
)


@dataclass
class Sent:
    session_id: str
    message: OutgoingMessage
    result: SendResult
    at: datetime


@dataclass
class FakeConnection(EngineConnection):
    engine: FakeEngine
    ref: SessionRef
    listener: EngineListener
    closed: bool = False
    logged_out: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    read_marks: list[tuple[Jid, list[str]]] = field(default_factory=list)
    typing: list[tuple[Jid, TypingState]] = field(default_factory=list)
    history_requests: list[tuple[Jid | None, int]] = field(default_factory=list)
    #: Every ``check_numbers`` request: the numbers asked and when.
    number_checks: list[tuple[list[str], datetime]] = field(default_factory=list)
    #: The ``engine_ref`` of every media download.
    downloads: list[str] = field(default_factory=list)

    async def emit(self, event: EngineEvent) -> None:
        if self.closed:
            return
        async with self.lock:
            await self.listener(event)

    def _check_open(self) -> None:
        if self.closed:
            raise SessionNotConnected("The fake connection is closed.")

    async def send(self, message: OutgoingMessage) -> SendResult:
        self._check_open()
        engine = self.engine
        engine.send_calls.append((self.ref.session_id, message, engine.clock.now()))
        if engine.rate_limited_until is not None and engine.clock.now() < engine.rate_limited_until:
            raise RateLimited(until=engine.rate_limited_until)
        if engine.send_errors:
            raise engine.send_errors.pop(0)
        if engine.fail_sends > 0:
            engine.fail_sends -= 1
            raise SendFailed("fake engine: send failed as scripted")
        result = SendResult(wa_id=f"3EB0FAKE{next(engine.ids):012d}", timestamp=engine.clock.now())
        engine.sent.append(Sent(self.ref.session_id, message, result, engine.clock.now()))
        return result

    async def mark_read(self, chat: Jid, sender: Jid | None, wa_ids: list[str]) -> None:
        self._check_open()
        self.read_marks.append((chat, list(wa_ids)))

    async def send_typing(self, chat: Jid, state: TypingState) -> None:
        self._check_open()
        self.typing.append((chat, state))

    async def check_numbers(self, numbers: list[str]) -> list[NumberCheck]:
        self._check_open()
        self.number_checks.append((list(numbers), self.engine.clock.now()))
        checks = []
        for number in numbers:
            jid = Jid.phone(number)
            exists = jid.user in self.engine.known_numbers
            checks.append(NumberCheck(number=number, exists=exists, jid=jid if exists else None))
        return checks

    async def request_history(self, chat: Jid | None, count: int) -> None:
        self._check_open()
        self.history_requests.append((chat, count))

    async def download_media(self, media: Media) -> bytes:
        self._check_open()
        self.downloads.append(media.engine_ref or "")
        await asyncio.sleep(0)  # a download takes a moment: concurrent callers overlap
        blob = self.engine.media.get(media.engine_ref or "")
        if blob is None:
            raise SendFailed("fake engine: no such media")
        return blob

    async def pair_phone(self, phone: str) -> str:
        self._check_open()
        self.engine.pairing_requests.append((self.ref.session_id, phone))
        return "FAKE-CODE"

    async def contacts(self) -> list[ContactInfo]:
        self._check_open()
        return list(self.engine.contacts)

    async def logout(self) -> None:
        self._check_open()
        self.engine.credentials.pop(self.ref.session_id, None)
        self.logged_out = True
        self.closed = True

    async def disconnect(self) -> None:
        self.closed = True


class FakeEngine(WhatsAppEngine):
    """A scriptable engine. ``credentials`` is its device store: session id → account JID."""

    def __init__(self, clock: Clock, *, qr_valid_for: timedelta = timedelta(seconds=60)) -> None:
        self.clock = clock
        self.qr_valid_for = qr_valid_for
        self.credentials: dict[str, Jid] = {}
        self.connections: dict[str, FakeConnection] = {}
        self.opened: list[tuple[str, datetime]] = []
        self.sent: list[Sent] = []
        self.send_calls: list[tuple[str, OutgoingMessage, datetime]] = []
        self.known_numbers: set[str] = set()
        self.contacts: list[ContactInfo] = []
        self.media: dict[str, bytes] = {}
        self.pairing_requests: list[tuple[str, str]] = []
        #: Scripted behaviour of the next opens and sends.
        self.network_down = False
        self.outdated = False
        self.corrupt_credentials: set[str] = set()
        self.fail_sends = 0
        #: Errors the next sends raise, one each, before ``fail_sends`` is looked at.
        self.send_errors: list[Exception] = []
        self.rate_limited_until: datetime | None = None
        self.ids = itertools.count(1)
        self._qr_seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    # -- the port -------------------------------------------------------------------------

    async def open(self, ref: SessionRef, listener: EngineListener) -> EngineConnection:
        connection = FakeConnection(self, ref, listener)
        self.connections[ref.session_id] = connection
        self.opened.append((ref.session_id, self.clock.now()))
        task = asyncio.create_task(self._first_event(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return connection

    async def forget(self, ref: SessionRef) -> None:
        self.credentials.pop(ref.session_id, None)
        self.corrupt_credentials.discard(ref.session_id)

    async def close(self) -> None:
        self.closed = True
        for connection in self.connections.values():
            await connection.disconnect()

    async def _first_event(self, connection: FakeConnection) -> None:
        sid = connection.ref.session_id
        event: EngineEvent
        if sid in self.corrupt_credentials:
            event = CredentialsUnreadable(error="fake engine: device store is corrupt")
        elif self.outdated:
            event = ConnectFailed(reason="client_outdated")
        elif self.network_down:
            event = Disconnected(reason="network")
        elif sid in self.credentials:
            event = Connected(jid=self.credentials[sid])
        else:
            event = self._next_qr()
        await connection.emit(event)

    def _next_qr(self) -> QrCode:
        n = next(self._qr_seq)
        return QrCode(
            code=f"2@fake-qr-{n},fake-key,fake-identity,fake-adv", valid_for=self.qr_valid_for
        )

    # -- scripting ------------------------------------------------------------------------

    def connection(self, session_id: str) -> FakeConnection:
        return self.connections[session_id]

    def opens_of(self, session_id: str) -> list[datetime]:
        return [at for sid, at in self.opened if sid == session_id]

    async def emit(self, session_id: str, event: EngineEvent) -> None:
        await self.connections[session_id].emit(event)

    async def rotate_qr(self, session_id: str) -> QrCode:
        qr = self._next_qr()
        await self.emit(session_id, qr)
        return qr

    async def scan(
        self, session_id: str, phone: str = "5566996285154", lid: str | None = None
    ) -> Jid:
        """The phone scans the QR: credentials stored, then paired and connected."""
        jid = Jid.phone(phone)
        lid_jid = Jid(lid, Jid.LID_SERVER) if lid else None
        self.credentials[session_id] = jid
        await self.emit(session_id, Paired(jid=jid, lid=lid_jid, push_name="Fake Phone"))
        await self.emit(session_id, Connected(jid=jid, lid=lid_jid, push_name="Fake Phone"))
        return jid

    async def drop(self, session_id: str, reason: str = "network") -> None:
        await self.emit(session_id, Disconnected(reason=reason))

    async def log_out(self, session_id: str, *, on_connect: bool = False) -> None:
        self.credentials.pop(session_id, None)
        await self.emit(session_id, LoggedOut(on_connect=on_connect, reason="unlinked from phone"))

    async def ban(self, session_id: str, expires_at: datetime | None) -> None:
        await self.emit(session_id, Banned(code="101", expires_at=expires_at))

    async def replace(self, session_id: str) -> None:
        await self.emit(session_id, Replaced())

    async def reject_outdated(self, session_id: str) -> None:
        await self.emit(session_id, ConnectFailed(reason="client_outdated"))
