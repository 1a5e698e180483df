"""Request and response bodies (msgspec Structs): the edge of the API, and its OpenAPI schema.

Domain objects never leave through Litestar as they are: each answer is one of these, made
from the domain's own ``to_dict`` form.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.message import Message
from whatsgate.domain.organization import User
from whatsgate.domain.session import Session, iso
from whatsgate.ports.repositories import ConversationView

Name = Annotated[str, Meta(min_length=1, max_length=100, examples=["sales"])]
Id = Annotated[str, Meta(min_length=1, max_length=64)]


class SessionOut(msgspec.Struct, kw_only=True):
    id: str
    organization_id: str
    name: str
    owner_id: str
    status: Annotated[
        str,
        Meta(
            description="stopped | starting | awaiting_scan | connected | reconnecting | "
            "logged_out | banned | replaced | failed"
        ),
    ]
    status_reason: str | None
    status_changed_at: str | None
    jid: str | None
    lid: str | None
    push_name: str | None
    qr: str | None
    qr_expires_at: str | None
    paired_at: str | None
    last_connected_at: str | None
    banned_until: str | None
    desired_running: bool
    shared_with: list[str]
    created_at: str

    @classmethod
    def of(cls, session: Session) -> SessionOut:
        return msgspec.convert(session.to_dict(), cls)


class SessionList(msgspec.Struct, kw_only=True):
    items: list[SessionOut]
    next_cursor: str | None


class CreateSessionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    start: bool = False


class UpdateSessionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    shared_with: Annotated[list[Id], Meta(max_length=1000)] | None = None


class QrOut(msgspec.Struct, kw_only=True):
    qr: str | None
    expires_at: str | None
    status: str
    session_id: str

    @classmethod
    def of(cls, session: Session) -> QrOut:
        return cls(
            qr=session.qr,
            expires_at=iso(session.qr_expires_at),
            status=str(session.status),
            session_id=session.id,
        )


class PairingCodeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    phone: Annotated[str, Meta(min_length=3, max_length=40, examples=["+55 66 99628-5154"])]


class PairingCodeOut(msgspec.Struct, kw_only=True):
    code: str
    expires_at: str


# -- users, organizations, tokens -----------------------------------------------------------


class UserOut(msgspec.Struct, kw_only=True):
    id: str
    organization_id: str
    name: str
    email: str | None
    role: Literal["admin", "agent"]
    created_at: str

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            organization_id=user.organization_id,
            name=user.name,
            email=user.email,
            role="admin" if user.is_admin else "agent",
            created_at=iso(user.created_at) or "",
        )


class UserList(msgspec.Struct, kw_only=True):
    items: list[UserOut]
    next_cursor: str | None = None


class CreateUserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Bea"])]
    email: Annotated[str, Meta(max_length=320, examples=["bea@example.com"])] | None = None
    role: Literal["admin", "agent"] = "agent"


class NewUserOut(msgspec.Struct, kw_only=True):
    id: str
    organization_id: str
    name: str
    email: str | None
    role: Literal["admin", "agent"]
    api_key: Annotated[str, Meta(description="Shown once; only its hash is stored.")]


class NewKeyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100, examples=["ci"])] = "default"


class ApiKeyOut(msgspec.Struct, kw_only=True):
    user_id: str
    name: str
    api_key: Annotated[str, Meta(description="Shown once; only its hash is stored.")]


class CreateOrganizationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Globex"])]
    admin_name: Annotated[str, Meta(min_length=1, max_length=200)] = "admin"
    admin_email: Annotated[str, Meta(max_length=320)] | None = None


class NewOrganizationOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    admin_user_id: str
    admin_api_key: Annotated[str, Meta(description="Shown once; only its hash is stored.")]


class TokenOut(msgspec.Struct, kw_only=True):
    token: str
    token_type: Literal["bearer"]
    expires_at: str


# -- events, health -------------------------------------------------------------------------


class EventOut(msgspec.Struct, kw_only=True):
    id: str
    event: str
    session_id: str
    timestamp: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: StoredEvent) -> EventOut:
        return msgspec.convert(event.envelope(), cls)


class EventList(msgspec.Struct, kw_only=True):
    items: list[EventOut]
    next_cursor: Annotated[
        str | None, Meta(description="Pass it as `after` to read on; null when caught up.")
    ]


class HealthOut(msgspec.Struct, kw_only=True):
    status: Literal["ok", "unavailable"]
    sessions: dict[str, int]


# -- messages -------------------------------------------------------------------------------

MessageType = Literal[
    "text",
    "image",
    "video",
    "audio",
    "voice",
    "document",
    "sticker",
    "location",
    "contact",
    "reaction",
]


class MediaIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Either ``data`` (base64) or ``url``."""

    data: bytes | None = None
    url: Annotated[str, Meta(max_length=4096)] | None = None
    mime: Annotated[str, Meta(min_length=3, max_length=255, examples=["image/jpeg"])] | None = None
    filename: Annotated[str, Meta(max_length=255)] | None = None
    caption: Annotated[str, Meta(max_length=65_536)] | None = None


class LocationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]
    name: Annotated[str, Meta(max_length=1000)] | None = None
    address: Annotated[str, Meta(max_length=1000)] | None = None


class ContactIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    display_name: Annotated[str, Meta(min_length=1, max_length=256)]
    vcard: Annotated[str, Meta(min_length=1, max_length=65_536)]


class ReactionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    message_id: Annotated[str, Meta(min_length=1, max_length=128)]
    emoji: Annotated[str, Meta(max_length=16)]


class SendMessageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=128,
            description="A phone number in any usual format, or a JID (contact, LID or group).",
            examples=["+55 66 99628-5154", "120363025246125486@g.us"],
        ),
    ]
    type: Annotated[MessageType, Meta(examples=["text"])] = "text"
    text: Annotated[str, Meta(max_length=65_536, examples=["Hello! How can we help?"])] | None = (
        None
    )
    media: MediaIn | None = None
    reply_to: Annotated[str, Meta(max_length=128)] | None = None
    location: LocationIn | None = None
    contact: ContactIn | None = None
    reaction: ReactionIn | None = None


class SendMessageOut(msgspec.Struct, kw_only=True):
    id: str
    status: Literal["queued"]
    throttled: Annotated[
        bool, Meta(description='Pacing holds it back for now ("queued to avoid block").')
    ]
    conversation_id: str


class MessageOut(msgspec.Struct, kw_only=True):
    id: str
    session_id: str
    conversation_id: str
    wa_id: str | None
    chat: str
    sender: str | None
    sender_alt: str | None
    push_name: str | None
    direction: Literal["in", "out"]
    type: str
    text: str | None
    media: dict[str, Any] | None
    location: dict[str, Any] | None
    contact: dict[str, Any] | None
    poll: dict[str, Any] | None
    quoted_wa_id: str | None
    target_wa_id: str | None
    unsupported_type: str | None
    reactions: dict[str, str]
    edited_at: str | None
    revoked: bool
    timestamp: str
    status: Annotated[
        str, Meta(description="queued | sent | delivered | read | played | failed | received")
    ]
    error: str | None
    created_at: str

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return msgspec.convert(message.to_dict(), cls)


class MessageList(msgspec.Struct, kw_only=True):
    items: list[MessageOut]
    next_cursor: str | None


class CheckNumbersIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    numbers: Annotated[
        list[Annotated[str, Meta(max_length=64)]], Meta(min_length=1, max_length=500)
    ]


class NumberCheckOut(msgspec.Struct, kw_only=True):
    number: str
    jid: str | None
    exists: bool


# -- conversations and contacts -------------------------------------------------------------


class ConversationOut(msgspec.Struct, kw_only=True):
    id: str
    session_id: str
    chat: str
    is_group: bool
    name: str | None
    status: Annotated[str, Meta(description="pending | active | closed")]
    assignee_id: str | None
    unread_count: int
    last_message_at: str | None
    last_message_preview: str | None
    last_message_id: str | None
    external_ref: str | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        return msgspec.convert(conversation.to_dict(), cls)

    @classmethod
    def of_view(cls, v: ConversationView) -> ConversationOut:
        return cls(
            id=v.id,
            session_id=v.session_id,
            chat=v.chat,
            is_group=v.is_group,
            name=v.name,
            status=v.status,
            assignee_id=v.assignee_id,
            unread_count=v.unread_count,
            last_message_at=v.last_message_at,
            last_message_preview=v.last_message_preview,
            last_message_id=v.last_message_id,
            external_ref=v.external_ref,
            metadata=v.metadata,
            created_at=v.created_at,
            updated_at=v.updated_at,
        )


class ConversationList(msgspec.Struct, kw_only=True):
    items: list[ConversationOut]
    next_cursor: str | None


class UpdateConversationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Literal["pending", "active", "closed"] | None = None
    #: A user id; null returns the conversation to the queue; absent leaves it.
    assignee_id: Annotated[str, Meta(max_length=64)] | msgspec.UnsetType | None = msgspec.UNSET
    external_ref: Annotated[str, Meta(max_length=200)] | None = None
    metadata: dict[str, Any] | None = None


class TypingStateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    state: Literal["composing", "recording", "paused"]


class ContactOut(msgspec.Struct, kw_only=True):
    id: str
    session_id: str
    jid: str
    lid: str | None
    phone: str | None
    name: str | None
    push_name: str | None
    business_name: str | None
    is_business: bool
    external_ref: str | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, contact: Contact) -> ContactOut:
        return msgspec.convert(contact.to_dict(), cls)


class ContactList(msgspec.Struct, kw_only=True):
    items: list[ContactOut]
    next_cursor: str | None


class UpdateContactIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    external_ref: Annotated[str, Meta(max_length=200)] | None = None
    metadata: dict[str, Any] | None = None


class HistorySyncIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    chat: (
        Annotated[
            str,
            Meta(
                max_length=128,
                description="A conversation id or a chat (phone number or JID); absent: recent "
                "history of every chat.",
            ),
        ]
        | None
    ) = None
    days: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=365,
                description="Advisory: WhatsApp answers an on-demand sync by message count; "
                "history older than the server's import window is skipped.",
            ),
        ]
        | None
    ) = None
    count: Annotated[int, Meta(ge=1, le=500, description="Messages to ask for.")] = 100


# -- webhooks -------------------------------------------------------------------------------


class CreateWebhookIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, Meta(max_length=2048, examples=["https://example.com/whatsgate"])]
    events: Annotated[
        list[str],
        Meta(
            max_length=20,
            description="Event names (`message.new`, `session.status`…); empty: every event.",
            examples=[["message.new", "message.status"]],
        ),
    ] = msgspec.field(default_factory=list)
    session_id: Annotated[str, Meta(max_length=64)] | None = None
    secret: (
        Annotated[
            str, Meta(min_length=16, max_length=256, description="Signs deliveries (HMAC-SHA256).")
        ]
        | None
    ) = None


class WebhookOut(msgspec.Struct, kw_only=True):
    id: str
    organization_id: str
    session_id: str | None
    url: str
    events: list[str]
    signed: bool
    active: bool
    created_at: str

    @classmethod
    def of(cls, webhook: Any) -> WebhookOut:
        return msgspec.convert(webhook.to_dict(), cls)


class WebhookList(msgspec.Struct, kw_only=True):
    items: list[WebhookOut]
    next_cursor: str | None = None


class RotateSecretIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    secret: Annotated[str, Meta(min_length=16, max_length=256)]
    keep_previous: Annotated[
        bool, Meta(description="Sign with the old secret too until the next rotation.")
    ] = True


class DeliveryAttemptOut(msgspec.Struct, kw_only=True):
    id: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    latency_ms: float | None
    ok: bool


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: str
    webhook_id: str
    event_id: str
    status: Annotated[str, Meta(description="pending | delivered | failed | dead")]
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    delivered_at: str | None
    attempt_log: list[DeliveryAttemptOut]

    @classmethod
    def of(cls, record: Any) -> DeliveryOut:
        return msgspec.convert(record.to_dict(), cls)


class DeliveryList(msgspec.Struct, kw_only=True):
    items: list[DeliveryOut]
    next_cursor: str | None
