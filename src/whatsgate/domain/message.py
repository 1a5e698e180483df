"""Messages: every kind WhatsApp carries, with ticks that only move forward."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from whatsgate.domain.errors import InvalidMessage
from whatsgate.domain.ids import new_id
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import iso


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    DOCUMENT = "document"
    STICKER = "sticker"
    REACTION = "reaction"
    LOCATION = "location"
    CONTACT = "contact"
    POLL = "poll"
    UNSUPPORTED = "unsupported"


MEDIA_KINDS = frozenset(
    {
        MessageKind.IMAGE,
        MessageKind.VIDEO,
        MessageKind.AUDIO,
        MessageKind.VOICE,
        MessageKind.DOCUMENT,
        MessageKind.STICKER,
    }
)


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    RECEIVED = "received"


#: Outbound ticks in the only order they may take.
_TICK_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
    MessageStatus.PLAYED: 4,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """What we know of a message's media. The bytes live in the MediaStore under ``storage_key``
    once fetched; ``engine_ref`` is the engine's own handle to download them (opaque)."""

    mime: str
    size: int | None = None
    sha256: str | None = None
    file_name: str | None = None
    storage_key: str | None = None
    engine_ref: str | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
            "file_name": self.file_name,
            "width": self.width,
            "height": self.height,
            "duration_seconds": self.duration_seconds,
            "stored": self.storage_key is not None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if not (-90 <= self.latitude <= 90 and -180 <= self.longitude <= 180):
            raise InvalidMessage("Latitude must be within ±90 and longitude within ±180.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactCard:
    display_name: str
    vcard: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    question: str
    options: tuple[str, ...]
    selectable_count: int = 1


@dataclass(eq=False, slots=True, kw_only=True)
class Message:
    """One WhatsApp message of a session, unique by its WhatsApp id (``wa_id``)."""

    id: str = field(default_factory=new_id)
    organization_id: str
    session_id: str
    conversation_id: str
    wa_id: str | None
    chat: Jid
    sender: Jid | None
    #: The other address of the sender when WhatsApp gave both (phone JID ↔ LID).
    sender_alt: Jid | None = None
    push_name: str | None = None
    direction: Direction
    kind: MessageKind
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contact: ContactCard | None = None
    poll: Poll | None = None
    #: The WhatsApp id of the message this one replies to.
    quoted_wa_id: str | None = None
    #: For a reaction: the WhatsApp id of the message reacted to (the emoji is ``text``).
    target_wa_id: str | None = None
    #: For ``unsupported``: WhatsApp's own name of the content type.
    unsupported_type: str | None = None
    #: Reactions others put on this message: sender JID → emoji.
    reactions: dict[str, str] = field(default_factory=dict)
    edited_at: datetime | None = None
    revoked_at: datetime | None = None
    timestamp: datetime
    status: MessageStatus
    status_error: str | None = None
    created_at: datetime

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_inbound(self) -> bool:
        return self.direction is Direction.IN

    @property
    def shows_in_inbox(self) -> bool:
        """A reaction decorates another message: it moves neither the preview nor unread."""
        return self.kind is not MessageKind.REACTION

    @property
    def preview(self) -> str:
        """A short line for the conversation list."""
        if self.revoked_at is not None:
            return "(message deleted)"
        if self.text:
            return self.text[:200]
        if self.kind is MessageKind.LOCATION and self.location:
            return f"📍 {self.location.name or 'Location'}"
        if self.kind is MessageKind.CONTACT and self.contact:
            return f"👤 {self.contact.display_name}"
        if self.kind is MessageKind.POLL and self.poll:
            return f"📊 {self.poll.question}"[:200]
        if self.media and self.media.file_name:
            return f"[{self.kind}] {self.media.file_name}"[:200]
        return f"[{self.kind}]"

    def advance_status(self, status: MessageStatus, *, error: str | None = None) -> bool:
        """Move the tick forward; a late "delivered" never overwrites "read". True if changed."""
        if status is MessageStatus.FAILED:
            if self.status is not MessageStatus.QUEUED:
                return False
            self.status = status
            self.status_error = error
            return True
        if status not in _TICK_RANK or self.status not in _TICK_RANK:
            return False
        if _TICK_RANK[status] <= _TICK_RANK[self.status]:
            return False
        self.status = status
        self.status_error = None
        return True

    def apply_edit(self, text: str, at: datetime) -> bool:
        """The sender edited the text (or caption). True if changed; a revoked message stays
        revoked, and an edit older than the one applied is ignored."""
        if self.revoked_at is not None:
            return False
        if self.edited_at is not None and at < self.edited_at:
            return False
        if self.text == text and self.edited_at == at:
            return False
        self.text = text
        self.edited_at = at
        return True

    def revoke(self, at: datetime) -> bool:
        """Deleted for everyone. True if it was not already."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = at
        return True

    def apply_reaction(self, sender: Jid, emoji: str) -> bool:
        """An empty emoji removes the sender's reaction, as WhatsApp does. True if changed."""
        key = str(sender)
        if self.reactions.get(key) == (emoji or None):
            return False
        if emoji:
            self.reactions[key] = emoji
        else:
            self.reactions.pop(key, None)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "conversation_id": self.conversation_id,
            "wa_id": self.wa_id,
            "chat": str(self.chat),
            "sender": str(self.sender) if self.sender else None,
            "sender_alt": str(self.sender_alt) if self.sender_alt else None,
            "push_name": self.push_name,
            "direction": str(self.direction),
            "type": str(self.kind),
            "text": self.text,
            "media": self.media.to_dict() if self.media else None,
            "location": _location_dict(self.location),
            "contact": (
                {"display_name": self.contact.display_name, "vcard": self.contact.vcard}
                if self.contact
                else None
            ),
            "poll": (
                {
                    "question": self.poll.question,
                    "options": list(self.poll.options),
                    "selectable_count": self.poll.selectable_count,
                }
                if self.poll
                else None
            ),
            "quoted_wa_id": self.quoted_wa_id,
            "target_wa_id": self.target_wa_id,
            "unsupported_type": self.unsupported_type,
            "reactions": dict(self.reactions),
            "edited_at": iso(self.edited_at),
            "revoked": self.revoked_at is not None,
            "timestamp": iso(self.timestamp),
            "status": str(self.status),
            "error": self.status_error,
            "created_at": iso(self.created_at),
        }


def _location_dict(location: Location | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {
        "latitude": location.latitude,
        "longitude": location.longitude,
        "name": location.name,
        "address": location.address,
    }
