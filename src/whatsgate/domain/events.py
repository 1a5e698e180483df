"""Domain events: what happened, in the past tense, one dataclass each.

They are stored in the event log in the same unit of work as the change that caused them, then
handed to socket.io and webhooks under one naming (``name``) with one JSON shape (``payload``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from whatsgate.domain.conversation import Conversation
from whatsgate.domain.message import Message, MessageStatus
from whatsgate.domain.session import Session, iso


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    name: ClassVar[str] = "event"
    organization_id: str
    session_id: str
    occurred_at: datetime

    def payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def assignee_id(self) -> str | None:
        """The user whose personal room also gets this event (conversation events)."""
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class QrIssued(DomainEvent):
    name: ClassVar[str] = "session.qr"
    qr: str
    expires_at: datetime

    def payload(self) -> dict[str, Any]:
        return {"qr": self.qr, "expires_at": iso(self.expires_at)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStatusChanged(DomainEvent):
    name: ClassVar[str] = "session.status"
    session: dict[str, Any]
    previous_status: str | None = None

    @classmethod
    def of(cls, session: Session, at: datetime, previous: str | None) -> SessionStatusChanged:
        return cls(
            organization_id=session.organization_id,
            session_id=session.id,
            occurred_at=at,
            session=session.to_dict(),
            previous_status=previous,
        )

    def payload(self) -> dict[str, Any]:
        return {**self.session, "previous_status": self.previous_status}


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(DomainEvent):
    """``message.new``: a message entered a conversation, inbound or outbound."""

    name: ClassVar[str] = "message.new"
    message: dict[str, Any]
    conversation_assignee_id: str | None = None

    @classmethod
    def of(cls, message: Message, at: datetime, assignee_id: str | None = None) -> MessageReceived:
        return cls(
            organization_id=message.organization_id,
            session_id=message.session_id,
            occurred_at=at,
            message=message.to_dict(),
            conversation_assignee_id=assignee_id,
        )

    def payload(self) -> dict[str, Any]:
        return dict(self.message)

    @property
    def assignee_id(self) -> str | None:
        return self.conversation_assignee_id


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageUpdated(DomainEvent):
    """``message.updated``: a stored message changed (edited, deleted for everyone, reacted
    to). The payload is the whole message as it is now."""

    name: ClassVar[str] = "message.updated"
    message: dict[str, Any]
    conversation_assignee_id: str | None = None

    @classmethod
    def of(cls, message: Message, at: datetime, assignee_id: str | None = None) -> MessageUpdated:
        return cls(
            organization_id=message.organization_id,
            session_id=message.session_id,
            occurred_at=at,
            message=message.to_dict(),
            conversation_assignee_id=assignee_id,
        )

    def payload(self) -> dict[str, Any]:
        return dict(self.message)

    @property
    def assignee_id(self) -> str | None:
        return self.conversation_assignee_id


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStatusChanged(DomainEvent):
    name: ClassVar[str] = "message.status"
    message_id: str
    conversation_id: str
    wa_id: str | None
    status: MessageStatus
    error: str | None = None

    @classmethod
    def of(cls, message: Message, at: datetime) -> MessageStatusChanged:
        return cls(
            organization_id=message.organization_id,
            session_id=message.session_id,
            occurred_at=at,
            message_id=message.id,
            conversation_id=message.conversation_id,
            wa_id=message.wa_id,
            status=message.status,
            error=message.status_error,
        )

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "wa_id": self.wa_id,
            "status": str(self.status),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationUpdated(DomainEvent):
    name: ClassVar[str] = "conversation.updated"
    conversation: dict[str, Any]

    @classmethod
    def of(cls, conversation: Conversation, at: datetime) -> ConversationUpdated:
        return cls(
            organization_id=conversation.organization_id,
            session_id=conversation.session_id,
            occurred_at=at,
            conversation=conversation.to_dict(),
        )

    def payload(self) -> dict[str, Any]:
        return dict(self.conversation)

    @property
    def assignee_id(self) -> str | None:
        value = self.conversation.get("assignee_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingChanged(DomainEvent):
    name: ClassVar[str] = "chat.typing"
    conversation_id: str | None
    chat: str
    sender: str | None
    state: str

    def payload(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "chat": self.chat,
            "sender": self.sender,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HistorySyncProgress(DomainEvent):
    name: ClassVar[str] = "history.progress"
    processed: int
    total: int | None
    done: bool

    def payload(self) -> dict[str, Any]:
        return {"processed": self.processed, "total": self.total, "done": self.done}


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactsSynced(DomainEvent):
    name: ClassVar[str] = "contacts.synced"
    count: int

    def payload(self) -> dict[str, Any]:
        return {"count": self.count}


EVENT_NAMES: tuple[str, ...] = (
    QrIssued.name,
    SessionStatusChanged.name,
    MessageReceived.name,
    MessageUpdated.name,
    MessageStatusChanged.name,
    ConversationUpdated.name,
    TypingChanged.name,
    HistorySyncProgress.name,
    ContactsSynced.name,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """A domain event as the event log keeps it: ordered by ``id``, in its public JSON form."""

    id: int
    name: str
    organization_id: str
    session_id: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    #: The personal room (a user id) that also gets it, for conversation events.
    assignee_id: str | None = None

    def envelope(self) -> dict[str, Any]:
        """``{id, event, session_id, timestamp, data}``: what socket.io and webhooks carry."""
        return {
            "id": str(self.id),
            "event": self.name,
            "session_id": self.session_id,
            "timestamp": iso(self.occurred_at),
            "data": self.data,
        }
