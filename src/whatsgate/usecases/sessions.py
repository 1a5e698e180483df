"""The life of a session: create, start (InitializeWhatsAppClient), pair and connect
(UpdateUserWhatsAppSession), drop and recover (HandleDisconnect), stop, log out, delete,
restore after a restart, pair by phone code."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from whatsgate.domain.backoff import Backoff
from whatsgate.domain.errors import (
    AlreadyExists,
    Conflict,
    PermissionDenied,
    SessionAlreadyConnected,
    SessionNotFound,
    UserNotFound,
)
from whatsgate.domain.events import QrIssued
from whatsgate.domain.jid import normalize_phone
from whatsgate.domain.session import Session, SessionStatus, StopReason
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    CredentialsUnreadable,
    Disconnected,
    LoggedOut,
    Paired,
    PairFailed,
    QrCode,
    Replaced,
    SessionRef,
)
from whatsgate.ports.media import MediaStore
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory
from whatsgate.usecases._status import record_status
from whatsgate.usecases._steps import clear_in_steps
from whatsgate.usecases.connections import SessionConnections

log = logging.getLogger("whatsgate.sessions")

QR_TIMEOUT_TIMER = "qr_timeout"
RECONNECT_TIMER = "reconnect"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    #: No scan within this time after the first QR: the session stops (``qr_timeout``).
    qr_timeout: float = 180.0
    #: How long a start waits for the first QR (or the connection) before answering.
    ready_timeout: float = 20.0
    backoff: Backoff = field(default_factory=Backoff)
    #: Sessions opened at once by a restore.
    restore_concurrency: int = 8


async def _load(uow: UnitOfWork, session_id: str) -> Session:
    session = await uow.sessions.get(session_id)
    if session is None:
        raise SessionNotFound(session_id=session_id)
    return session


# -- create ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateSessionCommand:
    organization_id: str
    owner_id: str
    name: str


class CreateSession:
    """Create a session of an organization.

    - The owner must be a user of the same organization.
    - The name (1 to 100 characters) is unique within the organization.
    - A new session is ``stopped``; nothing connects until it is started.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: CreateSessionCommand) -> Session:
        async with self.uow() as uow:
            owner = await uow.users.get(command.owner_id)
            if owner is None or owner.organization_id != command.organization_id:
                raise UserNotFound(user_id=command.owner_id)
            session = Session(
                organization_id=command.organization_id,
                owner_id=command.owner_id,
                name=command.name,
                created_at=self.clock.now(),
            )
            existing = await uow.sessions.all(command.organization_id)
            if any(s.name == session.name for s in existing):
                raise AlreadyExists(
                    f"A session named {session.name!r} already exists.", field="name"
                )
            await uow.sessions.add(session)
            await uow.commit()
        log.info("session %s: created (%s)", session.id, session.name)
        return session


# -- start ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InitializeCommand:
    session_id: str
    #: Wait for the first QR (or the connection) before returning.
    wait: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class InitializeResult:
    session: Session

    @property
    def qr(self) -> str | None:
        return self.session.qr


class SessionBanned(Conflict):
    code = "session_banned"
    default_message = "WhatsApp banned this account for a while; it cannot start before then."


class InitializeWhatsAppClient:
    """Start (or resume) the engine client of a session.

    - A session whose connection is already open in this process is returned as it is.
    - With stored credentials the engine reconnects without a QR; without, the first QR is
      awaited (up to ``ready_timeout``) and returned on the session.
    - The session's desired state becomes running, so a restart restores it.
    - A temporarily banned session does not start before its ban expires.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        clock: Clock,
        settings: SessionSettings,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock
        self.settings = settings

    async def __call__(self, command: InitializeCommand) -> InitializeResult:
        sid = command.session_id
        async with self.connections.lock(sid):
            async with self.uow() as uow:
                session = await _load(uow, sid)
                if self.connections.is_open(sid) and session.is_running:
                    return InitializeResult(session=session)
                now = self.clock.now()
                if session.banned_until is not None and session.banned_until > now:
                    raise SessionBanned(banned_until=session.banned_until.isoformat())
                record_status(uow, session, session.start(now))
                await uow.sessions.save(session)
                await uow.commit()
            await self.connections.open(session)
        if command.wait:
            await self.connections.wait_ready(sid, self.settings.ready_timeout)
        async with self.uow() as uow:
            return InitializeResult(session=await _load(uow, sid))


# -- pairing and connection -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdate:
    session_id: str
    event: QrCode | Paired | PairFailed | Connected


class UpdateUserWhatsAppSession:
    """Persist what pairing and connection change on a session.

    - A QR code: stored with its expiry, status ``awaiting_scan``, ``session.qr`` published.
      The QR timeout runs from the first QR of a pairing attempt; no scan within it stops the
      session (reason ``qr_timeout``) and closes the engine client.
    - Paired: the account JID (and LID when known) stored, the QR cleared.
    - Connected: status ``connected``, QR cleared, ``last_connected_at`` set, the reconnect
      back-off reset, ``session.status`` published, and the outbox woken: what was queued
      while the session was away goes now, not at the outbox's next offline recheck.
    - A pairing error is logged; WhatsApp goes on issuing QR codes.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        clock: Clock,
        settings: SessionSettings,
        outbox_wake: asyncio.Event | None = None,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock
        self.settings = settings
        #: The outbox worker's wake-up (the one ``SendMessage`` sets).
        self.outbox_wake = outbox_wake

    async def __call__(self, update: SessionUpdate) -> Session:
        sid, event = update.session_id, update.event
        now = self.clock.now()
        async with self.uow() as uow:
            session = await _load(uow, sid)
            match event:
                case QrCode(code=code, valid_for=valid_for):
                    first = session.status is not SessionStatus.AWAITING_SCAN
                    record_status(uow, session, session.show_qr(code, now + valid_for, now))
                    uow.events.add(
                        QrIssued(
                            organization_id=session.organization_id,
                            session_id=sid,
                            occurred_at=now,
                            qr=code,
                            expires_at=now + valid_for,
                        )
                    )
                    if first:
                        self.connections.schedule(
                            sid,
                            QR_TIMEOUT_TIMER,
                            self.settings.qr_timeout,
                            lambda: self._expire_qr(sid),
                        )
                case Paired(jid=jid, lid=lid, push_name=push_name):
                    session.mark_paired(jid, now, lid=lid)
                    session.push_name = push_name or session.push_name
                    self.connections.cancel(sid, QR_TIMEOUT_TIMER)
                case Connected(jid=jid, lid=lid, push_name=push_name):
                    record_status(uow, session, session.mark_connected(now, jid=jid, lid=lid))
                    session.push_name = push_name or session.push_name
                    self.connections.cancel(sid, QR_TIMEOUT_TIMER)
                    self.connections.cancel(sid, RECONNECT_TIMER)
                    self.connections.reset_attempts(sid)
                case PairFailed(reason=reason):
                    log.warning("session %s: pairing failed: %s", sid, reason)
            await uow.sessions.save(session)
            await uow.commit()
        if isinstance(event, Connected) and self.outbox_wake is not None:
            self.outbox_wake.set()
        return session

    async def _expire_qr(self, session_id: str) -> None:
        async with self.connections.lock(session_id):
            async with self.uow() as uow:
                session = await _load(uow, session_id)
                if session.status is not SessionStatus.AWAITING_SCAN:
                    return
                record_status(
                    uow, session, session.mark_stopped(StopReason.QR_TIMEOUT, self.clock.now())
                )
                await uow.sessions.save(session)
                await uow.commit()
            await self.connections.close(session_id)


# -- losing the connection ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectCommand:
    session_id: str
    event: Disconnected | LoggedOut | Banned | Replaced | ConnectFailed | CredentialsUnreadable


class HandleDisconnect:
    """The connection supervisor: what happens when a session loses its connection.

    - A transient drop (network, keep-alive, stream error): ``reconnecting`` with the reason,
      and a reconnect after a capped exponential back-off with jitter (about 1 s doubling to
      60 s). A successful connection resets it. A session that never comes back keeps trying
      at the cap, never in a hot loop.
    - Logged out (also "logged out on connect"): credentials dropped, ``logged_out``; the
      next start needs a QR.
    - Temporary ban: ``banned`` until its expiry; one reconnect at the expiry, none before.
    - Replaced by another client: ``replaced``; no reconnect fight.
    - WhatsApp rejects the client (``client_outdated``…): ``failed`` with the reason.
    - Unreadable credentials: ``failed``, reason ``credentials_corrupted``; a logout clears
      them so the session can pair again.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        clock: Clock,
        settings: SessionSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock
        self.settings = settings
        self.rng = rng or random.Random()

    async def __call__(self, command: DisconnectCommand) -> Session:
        sid, event = command.session_id, command.event
        now = self.clock.now()
        close = False
        async with self.uow() as uow:
            session = await _load(uow, sid)
            if not session.is_running and not isinstance(event, LoggedOut):
                # A late event of a session already at rest (stopped, failed…): nothing to do.
                return session
            match event:
                case Disconnected(reason=reason):
                    record_status(uow, session, session.mark_reconnecting(reason, now))
                    attempt = self.connections.next_attempt(sid)
                    delay = self.settings.backoff.delay(attempt, self.rng)
                    log.info("session %s: reconnect attempt %d in %.1fs", sid, attempt, delay)
                    self.connections.schedule(
                        sid, RECONNECT_TIMER, delay, lambda: self._reconnect(sid)
                    )
                case LoggedOut(on_connect=on_connect):
                    reason = (
                        StopReason.LOGGED_OUT_ON_CONNECT if on_connect else StopReason.LOGGED_OUT
                    )
                    await self.connections.engine.forget(SessionRef(sid, session.jid))
                    record_status(uow, session, session.mark_logged_out(reason, now))
                    close = True
                case Banned(expires_at=expires_at):
                    record_status(uow, session, session.mark_banned(expires_at, now))
                    close = True
                case Replaced():
                    record_status(uow, session, session.mark_replaced(now))
                    close = True
                case ConnectFailed(reason=reason):
                    record_status(uow, session, session.mark_failed(reason, now))
                    close = True
                case CredentialsUnreadable(error=error):
                    log.error("session %s: device store unreadable: %s", sid, error)
                    record_status(
                        uow, session, session.mark_failed(StopReason.CREDENTIALS_CORRUPTED, now)
                    )
                    close = True
            await uow.sessions.save(session)
            await uow.commit()
        if close:
            await self.connections.close(sid)
        if isinstance(event, Banned) and event.expires_at is not None:
            wait = max(0.0, (event.expires_at - now).total_seconds())
            self.connections.schedule(sid, RECONNECT_TIMER, wait, lambda: self._lift_ban(sid))
        return session

    async def _reconnect(self, session_id: str) -> None:
        async with self.connections.lock(session_id):
            async with self.uow() as uow:
                session = await _load(uow, session_id)
            if session.status is not SessionStatus.RECONNECTING or not session.desired_running:
                return
            await self.connections.open(session)

    async def _lift_ban(self, session_id: str) -> None:
        async with self.connections.lock(session_id):
            async with self.uow() as uow:
                session = await _load(uow, session_id)
                if session.status is not SessionStatus.BANNED or not session.desired_running:
                    return
                record_status(uow, session, session.start(self.clock.now()))
                session.banned_until = None
                await uow.sessions.save(session)
                await uow.commit()
            await self.connections.open(session)


# -- stop, log out, delete ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCommand:
    session_id: str


class StopSession:
    """Disconnect a session and keep its pairing: the next start needs no QR.

    - Its desired state becomes stopped, so a restart does not reopen it.
    - Timers (QR timeout, reconnect) are cancelled.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, connections: SessionConnections, clock: Clock
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock

    async def __call__(self, command: SessionCommand) -> Session:
        sid = command.session_id
        async with self.connections.lock(sid):
            async with self.uow() as uow:
                session = await _load(uow, sid)
                record_status(
                    uow, session, session.mark_stopped(StopReason.BY_USER, self.clock.now())
                )
                await uow.sessions.save(session)
                await uow.commit()
            await self.connections.close(sid)
        return session


class LogoutSession:
    """Unlink the device from the account and forget the credentials.

    - A live paired connection logs out on WhatsApp (the phone stops listing the device).
    - The stored credentials are dropped in any case; the next start shows a QR.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, connections: SessionConnections, clock: Clock
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock

    async def __call__(self, command: SessionCommand) -> Session:
        sid = command.session_id
        async with self.connections.lock(sid), self.uow() as uow:
            session = await _load(uow, sid)
            await _unlink(self.connections, session)
            change = session.mark_logged_out(StopReason.LOGGED_OUT, self.clock.now())
            record_status(uow, session, change)
            await uow.sessions.save(session)
            await uow.commit()
        return session


async def _unlink(connections: SessionConnections, session: Session) -> None:
    """Log the device out on WhatsApp when the session is live and paired (best effort: the
    phone then drops it), close the connection and forget the stored credentials."""
    if connections.is_open(session.id) and session.is_paired:
        try:
            await connections.close(session.id, logout=True)
        except Exception:
            log.warning("session %s: WhatsApp logout failed; forgetting locally", session.id)
    await connections.close(session.id)
    await connections.engine.forget(SessionRef(session.id, session.jid))


class DeleteSession:
    """Remove a session and all its data.

    - A paired session is logged out first (best effort), so the phone drops the device.
    - Credentials, conversations, messages, contacts, outbox, events and media are removed.
    - In steps of ``_steps.DELETE_STEP`` rows, each its own unit of work, then the session: one
      transaction for a session of a million messages held SQLite's writers for seconds,
      past their busy timeout, and every other session's writes failed meanwhile. A delete
      cut short leaves the session with part of its data; deleting it again finishes.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        media: MediaStore,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.media = media

    async def __call__(self, command: SessionCommand) -> None:
        sid = command.session_id
        async with self.connections.lock(sid):
            async with self.uow() as uow:
                session = await _load(uow, sid)
            await _unlink(self.connections, session)
            await clear_in_steps(self.uow, lambda uow, step: uow.sessions.clear(sid, step))
            async with self.uow() as uow:
                await uow.sessions.delete(sid)
                await uow.commit()
            await self.media.delete_prefix(f"{sid}/")
        log.info("session %s: deleted", sid)


# -- restart --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreResult:
    restored: list[str]
    failed: dict[str, str]


class RestoreSessions:
    """At start-up, reopen every session whose desired state is running.

    - A paired session reconnects from its stored credentials: no QR.
    - Opens run with bounded concurrency; one session failing does not stop the others.
    - A session whose ban has not expired waits for its expiry instead.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        initialize: InitializeWhatsAppClient,
        settings: SessionSettings,
    ) -> None:
        self.uow = uow
        self.initialize = initialize
        self.settings = settings

    async def __call__(self) -> RestoreResult:
        async with self.uow() as uow:
            sessions = await uow.sessions.list_desired_running()
        gate = asyncio.Semaphore(self.settings.restore_concurrency)
        restored: list[str] = []
        failed: dict[str, str] = {}

        async def restore(session: Session) -> None:
            async with gate:
                try:
                    await self.initialize(InitializeCommand(session_id=session.id, wait=False))
                    restored.append(session.id)
                except Exception as exc:
                    log.warning("session %s: restore failed: %s", session.id, exc)
                    failed[session.id] = str(exc)

        await asyncio.gather(*(restore(s) for s in sessions))
        return RestoreResult(restored=restored, failed=failed)


# -- pairing code ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PairingCodeCommand:
    session_id: str
    phone: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PairingCode:
    code: str
    expires_at: datetime


class RequestPairingCode:
    """Pair by typing a code on the phone instead of scanning the QR.

    - The phone number is validated first (``InvalidPhoneNumber``).
    - A connected session has nothing to pair (``already_connected``).
    - A session that is not running is started; the code is asked of its live connection.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: SessionConnections,
        initialize: InitializeWhatsAppClient,
        clock: Clock,
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.initialize = initialize
        self.clock = clock

    async def __call__(self, command: PairingCodeCommand) -> PairingCode:
        phone = normalize_phone(command.phone)
        async with self.uow() as uow:
            session = await _load(uow, command.session_id)
        if session.is_connected:
            raise SessionAlreadyConnected(session_id=session.id)
        result = await self.initialize(InitializeCommand(session_id=session.id))
        if result.session.is_connected:
            raise SessionAlreadyConnected(session_id=session.id)
        code = await self.connections.get(session.id).pair_phone(phone)
        return PairingCode(code=code, expires_at=self.clock.now() + timedelta(minutes=3))


def ensure_visible(session: Session, user_id: str, *, is_admin: bool) -> None:
    """Raise ``PermissionDenied`` unless the user may see the session."""
    if not session.visible_to(user_id, is_admin=is_admin):
        raise PermissionDenied(session_id=session.id)
