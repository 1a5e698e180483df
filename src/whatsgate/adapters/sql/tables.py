"""The schema: SQLAlchemy Core tables in one ``MetaData``, apart from the domain classes.

Ids are application-made UUIDv7 strings (``domain/ids.py``), so bulk inserts need no
``RETURNING`` per row; the event log alone has a database-assigned integer id, the order
clients catch up by. Every table under a session has ``session_id`` with ``ON DELETE CASCADE``.
Times are aware UTC (``UtcDateTime``), JIDs are text (``JidType``), free-form data is JSON.

The schema changes only through an Alembic migration (``migrations/versions``); a test checks
that the migrated schema equals this one.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from whatsgate.adapters.sql.types import JidType, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = 36  # a UUID string
#: The event log's id: BIGINT on PostgreSQL, the rowid (INTEGER PRIMARY KEY) on SQLite.
EventId = BigInteger().with_variant(Integer(), "sqlite")


#: The columns of a row's owner, set when it is inserted and never changed: upserts leave
#: them out of their ``SET`` list, so that SQLite does not rewrite the indexes that hold
#: them and nothing else that changes (``(session_id)``, ``(session_id, id)``), as it does
#: for every index with a column in that list, changed or not.
OWNER_COLUMNS = frozenset({"organization_id", "session_id"})


def _id() -> Column[str]:
    return Column("id", String(ID), primary_key=True)


def _organization() -> Column[str]:
    return Column(
        "organization_id",
        String(ID),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    )


def _session() -> Column[str]:
    return Column(
        "session_id", String(ID), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )


organizations = Table(
    "organizations",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

users = Table(
    "users",
    metadata,
    _id(),
    _organization(),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("role", String(20), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index(None, "organization_id"),
)

sessions = Table(
    "sessions",
    metadata,
    _id(),
    _organization(),
    Column("owner_id", String(ID), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text),
    Column("status_changed_at", UtcDateTime()),
    Column("jid", JidType()),
    Column("lid", JidType()),
    Column("push_name", Text),
    Column("qr", Text),
    Column("qr_expires_at", UtcDateTime()),
    Column("awaiting_scan_since", UtcDateTime()),
    Column("paired_at", UtcDateTime()),
    Column("last_connected_at", UtcDateTime()),
    Column("banned_until", UtcDateTime()),
    Column("desired_running", Boolean, nullable=False),
    Column("shared_with", JSON, nullable=False),
    Index(None, "organization_id"),
)

contacts = Table(
    "contacts",
    metadata,
    _id(),
    _organization(),
    _session(),
    Column("jid", JidType(), nullable=False),
    Column("lid", JidType()),
    Column("name", Text),
    Column("push_name", Text),
    Column("business_name", Text),
    Column("is_business", Boolean, nullable=False),
    Column("external_ref", String(200)),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index(None, "session_id", "jid"),
    Index(None, "session_id", "lid"),
    # The contact list, in id order a page at a time: without it each page sorted all of
    # the session's contacts (1.8 ms a page at 10,000 on SQLite; 0.07 ms with it).
    Index(None, "session_id", "id"),
)

conversations = Table(
    "conversations",
    metadata,
    _id(),
    _organization(),
    _session(),
    Column("chat", JidType(), nullable=False),
    Column("name", Text),
    Column("status", String(20), nullable=False),
    Column("assignee_id", String(ID)),
    Column("unread_count", Integer, nullable=False),
    Column("last_message_at", UtcDateTime()),
    Column("last_message_preview", Text),
    Column("last_message_id", String(ID)),
    Column("external_ref", String(200)),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    #: ``last_message_at``, else ``created_at``: the inbox order, kept as a column to index it.
    Column("activity_at", UtcDateTime(), nullable=False),
    UniqueConstraint("session_id", "chat"),
    Index(None, "session_id", "activity_at", "id"),
    Index(None, "session_id", "status", "activity_at", "id"),
    Index(None, "session_id", "assignee_id", "activity_at", "id"),
)

messages = Table(
    "messages",
    metadata,
    _id(),
    _organization(),
    _session(),
    Column("conversation_id", String(ID), nullable=False),
    Column("wa_id", String(128)),
    Column("chat", JidType(), nullable=False),
    Column("sender", JidType()),
    Column("sender_alt", JidType()),
    Column("push_name", Text),
    Column("direction", String(3), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("text", Text),
    Column("media", JSON(none_as_null=True)),
    Column("location", JSON(none_as_null=True)),
    Column("contact", JSON(none_as_null=True)),
    Column("poll", JSON(none_as_null=True)),
    Column("quoted_wa_id", String(128)),
    Column("target_wa_id", String(128)),
    Column("unsupported_type", String(100)),
    Column("reactions", JSON, nullable=False),
    Column("edited_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
    Column("timestamp", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("session_id", "wa_id"),
    Index(None, "conversation_id", "timestamp", "id"),
)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    _organization(),
    _session(),
    Column("message_id", String(ID), nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", Text),
    Column("throttled", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index(None, "state", "next_attempt_at", "id"),
    Index(None, "message_id"),
    #: Each session's head (its oldest pending entry) and pending counts.
    Index(None, "state", "session_id", "created_at", "id"),
    #: Deleting a session: its entries, not a read of every session's.
    Index(None, "session_id"),
)

send_attempts = Table(
    "send_attempts",
    metadata,
    _id(),
    _organization(),
    _session(),
    Column("outbox_id", String(ID), nullable=False),
    Column("message_id", String(ID), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("request_summary", Text, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("response", Text),
    Column("error", Text),
    Index(None, "message_id", "attempt"),
    Index(None, "session_id"),
)

#: The event log. No foreign keys: an event may outlive what it tells about (a deleted
#: session's own last event), and deleting a session deletes its events explicitly.
events = Table(
    "events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("organization_id", String(ID), nullable=False),
    Column("session_id", String(ID), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("data", JSON, nullable=False),
    Column("assignee_id", String(ID)),
    Index(None, "session_id", "id"),
    Index(None, "organization_id", "id"),
    sqlite_autoincrement=True,  # never reuse an id: consumers' cursors rely on it
)

event_cursors = Table(
    "event_cursors",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("event_id", EventId, nullable=False),
)

# -- for the server (repositories come with it) --------------------------------------------

api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    _organization(),
    Column("user_id", String(ID), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
    Index(None, "organization_id"),
)

webhooks = Table(
    "webhooks",
    metadata,
    _id(),
    _organization(),
    Column("session_id", String(ID), ForeignKey("sessions.id", ondelete="CASCADE")),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("secrets", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("active", Boolean, nullable=False),
    Index(None, "organization_id"),
    Index(None, "session_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    Column("webhook_id", String(ID), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", EventId, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime()),
    UniqueConstraint("webhook_id", "event_id"),
    Index(None, "status", "next_attempt_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    _id(),
    Column(
        "delivery_id",
        String(ID),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("latency_ms", Float),
    Index(None, "delivery_id", "attempt"),
)

session_leases = Table(
    "session_leases",
    metadata,
    Column(
        "session_id", String(ID), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("node_id", String(200), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index(None, "node_id"),
    Index(None, "expires_at"),
)
