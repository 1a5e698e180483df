"""A Session: one WhatsApp account connection, and its status machine.

    stopped ─start→ starting ─qr→ awaiting_scan ─paired+connected→ connected
                       │                │                              │
                       └──────────┬─────┴──────────────────────────────┘
                                  ├─ transient drop → reconnecting → (starting again)
                                  ├─ logged out     → logged_out (credentials gone, new QR needed)
                                  ├─ temporary ban  → banned (until expiry)
                                  ├─ replaced       → replaced (another client took the account)
                                  ├─ fatal          → failed (reason: client_outdated, …)
                                  └─ stop           → stopped (reason: by_user, qr_timeout, …)

Each transition is a method that records when and why. A transition the machine does not
allow raises ``InvalidSessionTransition``. Each returns the ``StatusChange`` (or ``None`` when
the status did not change) so the caller can log and publish it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from whatsgate.domain.errors import InvalidInput, InvalidSessionTransition
from whatsgate.domain.ids import new_id
from whatsgate.domain.jid import Jid


class SessionStatus(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    AWAITING_SCAN = "awaiting_scan"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    LOGGED_OUT = "logged_out"
    BANNED = "banned"
    REPLACED = "replaced"
    FAILED = "failed"


S = SessionStatus
#: The statuses in which an engine connection is (or is being) held open.
RUNNING = frozenset({S.STARTING, S.AWAITING_SCAN, S.CONNECTED, S.RECONNECTING})
#: Resting statuses: no connection; ``start`` leaves them.
RESTING = frozenset({S.STOPPED, S.LOGGED_OUT, S.BANNED, S.REPLACED, S.FAILED})

_ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.STOPPED: frozenset({S.STARTING, S.LOGGED_OUT}),
    S.STARTING: frozenset(RUNNING | RESTING) - {S.STARTING},
    # STARTING from a running status is a restart (after a crash, the process opens anew).
    S.AWAITING_SCAN: frozenset(RUNNING | RESTING) - {S.AWAITING_SCAN},
    S.CONNECTED: frozenset(RUNNING | RESTING) - {S.AWAITING_SCAN, S.CONNECTED},
    S.RECONNECTING: frozenset(RUNNING | RESTING) - {S.RECONNECTING},
    S.LOGGED_OUT: frozenset({S.STARTING, S.STOPPED}),
    S.BANNED: frozenset({S.STARTING, S.STOPPED, S.LOGGED_OUT}),
    S.REPLACED: frozenset({S.STARTING, S.STOPPED, S.LOGGED_OUT}),
    S.FAILED: frozenset({S.STARTING, S.STOPPED, S.LOGGED_OUT}),
}


class StopReason(StrEnum):
    """Why a session is stopped or failed; stable strings, shown in ``status_reason``."""

    BY_USER = "by_user"
    QR_TIMEOUT = "qr_timeout"
    LOGGED_OUT = "logged_out"
    LOGGED_OUT_ON_CONNECT = "logged_out_on_connect"
    REPLACED = "replaced"
    BANNED = "banned"
    CLIENT_OUTDATED = "client_outdated"
    NETWORK = "network"
    CREDENTIALS_CORRUPTED = "credentials_corrupted"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class StatusChange:
    session_id: str
    previous: SessionStatus
    current: SessionStatus
    reason: str | None
    at: datetime


@dataclass(eq=False, slots=True, kw_only=True)
class Session:
    """One WhatsApp account connection of an organization, owned by one of its users."""

    id: str = field(default_factory=new_id)
    organization_id: str
    owner_id: str
    name: str
    created_at: datetime
    status: SessionStatus = SessionStatus.STOPPED
    status_reason: str | None = None
    status_changed_at: datetime | None = None
    jid: Jid | None = None
    lid: Jid | None = None
    push_name: str | None = None
    qr: str | None = None
    qr_expires_at: datetime | None = None
    awaiting_scan_since: datetime | None = None
    paired_at: datetime | None = None
    last_connected_at: datetime | None = None
    banned_until: datetime | None = None
    #: What restore obeys: True once started, False once stopped for good (by a person or a
    #: terminal reason such as logout or replacement).
    desired_running: bool = False
    #: Agents this session is shared with (admins see every session of the organization).
    shared_with: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.name = validate_session_name(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Session) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- questions ------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.status in RUNNING

    @property
    def is_paired(self) -> bool:
        return self.jid is not None

    @property
    def is_connected(self) -> bool:
        return self.status is SessionStatus.CONNECTED

    def visible_to(self, user_id: str, *, is_admin: bool) -> bool:
        return is_admin or user_id == self.owner_id or user_id in self.shared_with

    # -- transitions ----------------------------------------------------------------------

    def start(self, at: datetime) -> StatusChange | None:
        """Open (or reopen) the connection; restore will reopen it after a restart."""
        self.desired_running = True
        if self.status is SessionStatus.STARTING:
            return None
        return self._move(SessionStatus.STARTING, None, at)

    def show_qr(self, code: str, expires_at: datetime, at: datetime) -> StatusChange | None:
        """A QR code to scan; rotations keep ``awaiting_scan_since`` (the QR timeout's clock)."""
        if self.status is not SessionStatus.AWAITING_SCAN:
            change = self._move(SessionStatus.AWAITING_SCAN, None, at)
            self.awaiting_scan_since = at
        else:
            change = None
        self.qr = code
        self.qr_expires_at = expires_at
        return change

    def mark_paired(self, jid: Jid, at: datetime, *, lid: Jid | None = None) -> None:
        """The phone scanned the QR (or typed the code): the account is known from now on."""
        self.jid = jid
        if lid is not None:
            self.lid = lid
        self.paired_at = at
        self._clear_qr()

    def mark_connected(
        self, at: datetime, *, jid: Jid | None = None, lid: Jid | None = None
    ) -> StatusChange | None:
        if jid is not None:
            self.jid = jid
        if lid is not None:
            self.lid = lid
        self._clear_qr()
        self.last_connected_at = at
        self.banned_until = None
        if self.status is SessionStatus.CONNECTED:
            return None
        return self._move(SessionStatus.CONNECTED, None, at)

    def mark_reconnecting(self, reason: str, at: datetime) -> StatusChange | None:
        if self.status is SessionStatus.RECONNECTING:
            self.status_reason = reason
            return None
        return self._move(SessionStatus.RECONNECTING, reason, at)

    def mark_logged_out(self, reason: str, at: datetime) -> StatusChange | None:
        """The device is unlinked: credentials are gone and the next start needs a QR."""
        self.desired_running = False
        self.jid = None
        self.lid = None
        self.paired_at = None
        self._clear_qr()
        if self.status is SessionStatus.LOGGED_OUT:
            self.status_reason = reason
            return None
        return self._move(SessionStatus.LOGGED_OUT, reason, at)

    def mark_banned(self, until: datetime | None, at: datetime) -> StatusChange | None:
        """A temporary ban: no reconnect before ``until``. Restore still obeys the desire."""
        self.banned_until = until
        self._clear_qr()
        if self.status is SessionStatus.BANNED:
            return None
        return self._move(SessionStatus.BANNED, StopReason.BANNED, at)

    def mark_replaced(self, at: datetime) -> StatusChange | None:
        """Another client took the account; fighting back would only loop."""
        self.desired_running = False
        self._clear_qr()
        return self._move(SessionStatus.REPLACED, StopReason.REPLACED, at)

    def mark_failed(self, reason: str, at: datetime) -> StatusChange | None:
        self.desired_running = False
        self._clear_qr()
        if self.status is SessionStatus.FAILED:
            self.status_reason = reason
            return None
        return self._move(SessionStatus.FAILED, reason, at)

    def mark_stopped(
        self, reason: str, at: datetime, *, keep_desired: bool = False
    ) -> StatusChange | None:
        """Disconnect, keeping the pairing. ``keep_desired`` is for a server shutdown."""
        if not keep_desired:
            self.desired_running = False
        self._clear_qr()
        if self.status is SessionStatus.STOPPED:
            return None
        return self._move(SessionStatus.STOPPED, reason, at)

    def rename(self, name: str) -> None:
        self.name = validate_session_name(name)

    def share_with(self, user_ids: frozenset[str]) -> None:
        self.shared_with = frozenset(user_ids)

    # -- internals ------------------------------------------------------------------------

    def _clear_qr(self) -> None:
        self.qr = None
        self.qr_expires_at = None
        self.awaiting_scan_since = None

    def _move(self, to: SessionStatus, reason: str | None, at: datetime) -> StatusChange:
        if to not in _ALLOWED[self.status]:
            raise InvalidSessionTransition(
                f"A session cannot go from {self.status} to {to}.",
                session_id=self.id,
                status=str(self.status),
                to=str(to),
            )
        change = StatusChange(self.id, self.status, to, reason, at)
        self.status = to
        self.status_reason = reason
        self.status_changed_at = at
        return change

    def to_dict(self) -> dict[str, Any]:
        """The public JSON form (HTTP responses, ``session.status`` events)."""
        return {
            "id": self.id,
            "organization_id": self.organization_id,
            "name": self.name,
            "owner_id": self.owner_id,
            "status": str(self.status),
            "status_reason": self.status_reason,
            "status_changed_at": iso(self.status_changed_at),
            "jid": str(self.jid) if self.jid else None,
            "lid": str(self.lid) if self.lid else None,
            "push_name": self.push_name,
            "qr": self.qr,
            "qr_expires_at": iso(self.qr_expires_at),
            "paired_at": iso(self.paired_at),
            "last_connected_at": iso(self.last_connected_at),
            "banned_until": iso(self.banned_until),
            "desired_running": self.desired_running,
            "shared_with": sorted(self.shared_with),
            "created_at": iso(self.created_at),
        }


def validate_session_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("A session needs a name of 1 to 100 characters.", field="name")
    return name


#: The text of the times ``iso`` formatted last, by the time's identity (the object is kept,
#: so its id is not reused while it is here): one unit of work formats the same few objects
#: many times (the clock's reading as each message's ``created_at`` and each conversation's
#: ``updated_at``; a message's ``timestamp`` again as its conversation's
#: ``last_message_at``), at ~0.8 µs a time, five per live message (bench/live_ingest.py).
_ISO_MEMO: dict[int, tuple[datetime, str]] = {}
_ISO_MEMO_SIZE = 512


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as every time in the API."""
    if value is None:
        return None
    known = _ISO_MEMO.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    text = value.isoformat().replace("+00:00", "Z")
    if len(_ISO_MEMO) >= _ISO_MEMO_SIZE:
        _ISO_MEMO.clear()
    _ISO_MEMO[id(value)] = (value, text)
    return text
