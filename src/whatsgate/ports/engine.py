"""The WhatsApp engine port, and the engine events it reports.

An engine (neonize, the sandbox, ``whatsgate.testing.FakeEngine``) opens one connection per
session and reports what happens on it by awaiting the listener with the events below — never
with its own types. The listener is awaited: an engine tells WhatsApp a message arrived only
once the listener has returned, that is once the message is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from whatsgate.domain.jid import Jid
from whatsgate.domain.message import ContactCard, Location, Media, MessageKind, Poll


@dataclass(frozen=True, slots=True)
class SessionRef:
    """What an engine needs to know of a session to open it."""

    session_id: str
    #: The paired account, when there is one: the engine resumes its stored device.
    jid: Jid | None = None


# -- connection lifecycle events ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class QrCode:
    """A QR code to show; WhatsApp rotates it (60 s for the first, then 20 s)."""

    code: str
    valid_for: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class Paired:
    """The phone scanned the QR code (or typed the pairing code)."""

    jid: Jid
    lid: Jid | None = None
    push_name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PairFailed:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    jid: Jid | None = None
    lid: Jid | None = None
    push_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    """The connection dropped for a reason that may pass (network, keep-alive, stream error)."""

    reason: str = "network"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedOut:
    """The device was unlinked (from the phone, or WhatsApp refused it on connect)."""

    on_connect: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Banned:
    """A temporary ban; no reconnect before ``expires_at``."""

    code: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Replaced:
    """Another client took over the account (stream replaced)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectFailed:
    """WhatsApp refused the connection for good: ``client_outdated`` and the like."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialsUnreadable:
    """The stored device (credentials) cannot be opened or is corrupt."""

    error: str


# -- traffic events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingMessage:
    """One message as WhatsApp delivered it (live or from history), in the domain's words.

    ``from_me`` is a message the account itself sent (from the phone or another device).
    An edit or revoke names its target in ``target_wa_id`` with ``is_edit``/``is_revoke``; a
    reaction has kind ``reaction``, the emoji in ``text`` and the target in ``target_wa_id``.
    """

    wa_id: str
    chat: Jid
    sender: Jid | None
    sender_alt: Jid | None = None
    chat_alt: Jid | None = None
    from_me: bool = False
    push_name: str | None = None
    timestamp: datetime
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
    chat_name: str | None = None


class ReceiptType(StrEnum):
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    chat: Jid
    sender: Jid | None
    wa_ids: tuple[str, ...]
    type: ReceiptType
    timestamp: datetime


class TypingState(StrEnum):
    COMPOSING = "composing"
    RECORDING = "recording"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    chat: Jid
    sender: Jid | None
    state: TypingState


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactInfo:
    jid: Jid
    lid: Jid | None = None
    name: str | None = None
    push_name: str | None = None
    business_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryBatch:
    """A chunk of history WhatsApp pushed (on pairing or on demand)."""

    messages: tuple[IncomingMessage, ...] = ()
    contacts: tuple[ContactInfo, ...] = ()
    #: LID ↔ phone pairs learnt from the sync: (lid, phone JID).
    lid_mappings: tuple[tuple[Jid, Jid], ...] = ()
    #: WhatsApp's own progress (0 to 100) when it gives one.
    progress: int | None = None
    is_last: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactsBatch:
    contacts: tuple[ContactInfo, ...] = ()


EngineEvent = (
    QrCode
    | Paired
    | PairFailed
    | Connected
    | Disconnected
    | LoggedOut
    | Banned
    | Replaced
    | ConnectFailed
    | CredentialsUnreadable
    | IncomingMessage
    | Receipt
    | Presence
    | HistoryBatch
    | ContactsBatch
)


# -- sending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    """One send. Media bytes travel in ``media_data``."""

    to: Jid
    kind: MessageKind
    text: str | None = None
    media: Media | None = None
    media_data: bytes | None = None
    location: Location | None = None
    contact: ContactCard | None = None
    quoted_wa_id: str | None = None
    #: The sender of the quoted message, when known (WhatsApp needs it in groups).
    quoted_sender: Jid | None = None
    #: reaction: the message reacted to (emoji in ``text``, empty to remove).
    target_wa_id: str | None = None
    #: The sender of ``target_wa_id`` (reaction, revoke): needed in groups; in a direct chat
    #: a reaction defaults to the other party's message, a revoke to the account's own.
    target_sender: Jid | None = None
    #: ``target_wa_id`` is edited to ``text`` / revoked.
    is_edit: bool = False
    is_revoke: bool = False

    def summary(self) -> str:
        """A short description for the send log (no content)."""
        parts = [f"{self.kind} to {self.to}"]
        if self.text:
            parts.append(f"{len(self.text)} chars")
        if self.media_data is not None:
            parts.append(f"{len(self.media_data)} bytes")
        if self.quoted_wa_id:
            parts.append(f"reply to {self.quoted_wa_id}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    wa_id: str
    timestamp: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberCheck:
    number: str
    exists: bool
    jid: Jid | None = None


class EngineListener(Protocol):
    async def __call__(self, event: EngineEvent) -> None: ...


class EngineConnection(Protocol):
    """One session's live connection. Methods raise domain errors (``SendFailed``,
    ``RateLimited``, ``SessionNotConnected``…), never engine-specific ones."""

    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def mark_read(self, chat: Jid, sender: Jid | None, wa_ids: list[str]) -> None: ...

    async def send_typing(self, chat: Jid, state: TypingState) -> None: ...

    async def check_numbers(self, numbers: list[str]) -> list[NumberCheck]: ...

    async def request_history(self, chat: Jid | None, count: int) -> None: ...

    async def download_media(self, media: Media) -> bytes: ...

    async def pair_phone(self, phone: str) -> str:
        """A pairing code to type on the phone instead of scanning the QR."""
        ...

    async def contacts(self) -> list[ContactInfo]:
        """The account's contacts as the engine knows them."""
        ...

    async def logout(self) -> None:
        """Unlink the device on WhatsApp and forget the credentials."""
        ...

    async def disconnect(self) -> None:
        """Close the connection, keeping the credentials."""
        ...


class WhatsAppEngine(Protocol):
    async def open(self, ref: SessionRef, listener: EngineListener) -> EngineConnection:
        """Start connecting and return at once; what happens arrives through ``listener``."""
        ...

    async def forget(self, ref: SessionRef) -> None:
        """Drop the stored credentials of a session (logged out, deleted)."""
        ...

    async def close(self) -> None:
        """Release everything (server shutdown)."""
        ...
