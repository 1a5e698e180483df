"""Conversations (the attendant inbox) and contacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from whatsgate.domain.errors import InvalidInput
from whatsgate.domain.ids import new_id
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message
from whatsgate.domain.session import iso

MAX_EXTERNAL_REF = 200
MAX_METADATA_BYTES = 16_384


class ConversationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    CLOSED = "closed"


def _check_external_ref(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_EXTERNAL_REF:
        raise InvalidInput(f"external_ref is at most {MAX_EXTERNAL_REF} characters.")
    return value


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(repr(value).encode()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is at most {MAX_METADATA_BYTES} bytes.")
    return dict(value)


@dataclass(eq=False, slots=True, kw_only=True)
class Conversation:
    """One chat (a contact or a group) of a session, as the attendants' inbox shows it."""

    id: str = field(default_factory=new_id)
    organization_id: str
    session_id: str
    chat: Jid
    name: str | None = None
    status: ConversationStatus = ConversationStatus.PENDING
    assignee_id: str | None = None
    unread_count: int = 0
    last_message_at: datetime | None = None
    last_message_preview: str | None = None
    last_message_id: str | None = None
    external_ref: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Conversation) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_group(self) -> bool:
        return self.chat.is_group

    def register_message(self, message: Message, at: datetime, *, live: bool = True) -> bool:
        """A message entered the chat: preview and time follow the newest; inbound counts
        unread; a closed conversation that hears from its contact again is pending again.
        A reaction moves neither. History (``live=False``) only moves the preview: what was
        said weeks ago is neither unread nor a reason to reopen. True if anything changed."""
        if not message.shows_in_inbox:
            return False
        changed = False
        if self.last_message_at is None or message.timestamp >= self.last_message_at:
            self.last_message_at = message.timestamp
            self.last_message_preview = message.preview
            self.last_message_id = message.id
            changed = True
        if live and message.is_inbound:
            self.unread_count += 1
            if self.status is ConversationStatus.CLOSED:
                self.status = ConversationStatus.PENDING
            changed = True
        if changed:
            self.updated_at = at
        return changed

    def refresh_preview(self, message: Message, at: datetime) -> None:
        """The last message changed (edited, revoked): keep the preview true."""
        if self.last_message_id == message.id:
            self.last_message_preview = message.preview
            self.updated_at = at

    def readdress(self, chat: Jid, at: datetime) -> bool:
        """The chat became known by its phone number (it was known by its LID only)."""
        if chat == self.chat or not chat.is_user or not self.chat.is_lid:
            return False
        self.chat = chat
        self.updated_at = at
        return True

    def mark_read(self, at: datetime) -> bool:
        if self.unread_count == 0:
            return False
        self.unread_count = 0
        self.updated_at = at
        return True

    def assign(self, user_id: str | None, at: datetime) -> None:
        """Give the conversation to an attendant (``None`` returns it to the queue). A pending
        conversation someone takes becomes active."""
        self.assignee_id = user_id
        if user_id is not None and self.status is ConversationStatus.PENDING:
            self.status = ConversationStatus.ACTIVE
        self.updated_at = at

    def set_status(self, status: ConversationStatus, at: datetime) -> None:
        self.status = status
        self.updated_at = at

    def link(
        self,
        at: datetime,
        *,
        external_ref: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Link to the host system's own records (a client, a lead, a ticket)."""
        if external_ref is not None:
            self.external_ref = _check_external_ref(external_ref) or None
        if metadata is not None:
            self.metadata = _check_metadata(metadata)
        self.updated_at = at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "chat": str(self.chat),
            "is_group": self.is_group,
            "name": self.name,
            "status": str(self.status),
            "assignee_id": self.assignee_id,
            "unread_count": self.unread_count,
            "last_message_at": iso(self.last_message_at),
            "last_message_preview": self.last_message_preview,
            "last_message_id": self.last_message_id,
            "external_ref": self.external_ref,
            "metadata": dict(self.metadata),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(eq=False, slots=True, kw_only=True)
class Contact:
    """A WhatsApp account a session knows, by JID; merged as more is learnt, never duplicated.

    ``jid`` is the phone-number JID when known, else the LID; ``lid`` keeps the LID beside it.
    """

    id: str = field(default_factory=new_id)
    organization_id: str
    session_id: str
    jid: Jid
    lid: Jid | None = None
    name: str | None = None
    push_name: str | None = None
    business_name: str | None = None
    is_business: bool = False
    external_ref: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Contact) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def phone(self) -> str | None:
        return self.jid.phone_number

    @property
    def display_name(self) -> str | None:
        return self.name or self.push_name or self.business_name

    def merge(
        self,
        at: datetime,
        *,
        name: str | None = None,
        push_name: str | None = None,
        business_name: str | None = None,
        is_business: bool | None = None,
        phone_jid: Jid | None = None,
        lid: Jid | None = None,
    ) -> bool:
        """Learn more about the contact; empty values never erase what is known. True if
        anything changed."""
        before = (self.jid, self.lid, self.name, self.push_name, self.business_name)
        before_business = self.is_business
        if phone_jid is not None and phone_jid.is_user:
            if self.jid.is_lid and self.lid is None:
                self.lid = self.jid
            self.jid = phone_jid
        if lid is not None and lid.is_lid:
            self.lid = lid
        self.name = name or self.name
        self.push_name = push_name or self.push_name
        self.business_name = business_name or self.business_name
        if is_business is not None:
            self.is_business = is_business
        changed = (
            before != (self.jid, self.lid, self.name, self.push_name, self.business_name)
            or before_business != self.is_business
        )
        if changed:
            self.updated_at = at
        return changed

    def link(
        self,
        at: datetime,
        *,
        external_ref: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if external_ref is not None:
            self.external_ref = _check_external_ref(external_ref) or None
        if metadata is not None:
            self.metadata = _check_metadata(metadata)
        self.updated_at = at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "jid": str(self.jid),
            "lid": str(self.lid) if self.lid else None,
            "phone": self.phone,
            "name": self.name,
            "push_name": self.push_name,
            "business_name": self.business_name,
            "is_business": self.is_business,
            "external_ref": self.external_ref,
            "metadata": dict(self.metadata),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
