"""Rows ↔ entities, by hand: the domain classes know nothing of the tables.

``*_row`` functions give the dict of column values an INSERT takes; ``to_*`` functions build
a fresh entity from a row, so every read hands the caller its own copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, RowMapping

from whatsgate.adapters.sql.types import json_text
from whatsgate.domain.auth import ApiKey
from whatsgate.domain.conversation import Contact, Conversation, ConversationStatus
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import (
    ContactCard,
    Direction,
    Location,
    Media,
    Message,
    MessageKind,
    MessageStatus,
    Poll,
)
from whatsgate.domain.organization import Organization, Role, User
from whatsgate.domain.outbox import OutboxEntry, OutboxState, SendAttempt
from whatsgate.domain.session import Session, SessionStatus
from whatsgate.domain.webhook import DeliveryAttempt, DeliveryStatus, Webhook, WebhookDelivery

Values = dict[str, Any]


def _m(row: Row[Any]) -> RowMapping:
    return row._mapping


def organization_row(o: Organization) -> Values:
    return {"id": o.id, "name": o.name, "created_at": o.created_at}


def to_organization(row: Row[Any]) -> Organization:
    r = _m(row)
    return Organization(id=r["id"], name=r["name"], created_at=r["created_at"])


def user_row(u: User) -> Values:
    return {
        "id": u.id,
        "organization_id": u.organization_id,
        "name": u.name,
        "email": u.email,
        "role": str(u.role),
        "created_at": u.created_at,
    }


def to_user(row: Row[Any]) -> User:
    r = _m(row)
    return User(
        id=r["id"],
        organization_id=r["organization_id"],
        name=r["name"],
        email=r["email"],
        role=Role(r["role"]),
        created_at=r["created_at"],
    )


def api_key_row(k: ApiKey) -> Values:
    return {
        "id": k.id,
        "organization_id": k.organization_id,
        "user_id": k.user_id,
        "name": k.name,
        "key_hash": k.key_hash,
        "prefix": k.prefix,
        "created_at": k.created_at,
        "last_used_at": k.last_used_at,
        "revoked_at": k.revoked_at,
    }


def to_api_key(row: Row[Any]) -> ApiKey:
    r = _m(row)
    return ApiKey(
        id=r["id"],
        organization_id=r["organization_id"],
        user_id=r["user_id"],
        name=r["name"],
        key_hash=r["key_hash"],
        prefix=r["prefix"],
        created_at=r["created_at"],
        last_used_at=r["last_used_at"],
        revoked_at=r["revoked_at"],
    )


def session_row(s: Session) -> Values:
    return {
        "id": s.id,
        "organization_id": s.organization_id,
        "owner_id": s.owner_id,
        "name": s.name,
        "created_at": s.created_at,
        "status": str(s.status),
        "status_reason": s.status_reason,
        "status_changed_at": s.status_changed_at,
        "jid": s.jid,
        "lid": s.lid,
        "push_name": s.push_name,
        "qr": s.qr,
        "qr_expires_at": s.qr_expires_at,
        "awaiting_scan_since": s.awaiting_scan_since,
        "paired_at": s.paired_at,
        "last_connected_at": s.last_connected_at,
        "banned_until": s.banned_until,
        "desired_running": s.desired_running,
        "shared_with": sorted(s.shared_with),
    }


def to_session(row: Row[Any]) -> Session:
    r = _m(row)
    return Session(
        id=r["id"],
        organization_id=r["organization_id"],
        owner_id=r["owner_id"],
        name=r["name"],
        created_at=r["created_at"],
        status=SessionStatus(r["status"]),
        status_reason=r["status_reason"],
        status_changed_at=r["status_changed_at"],
        jid=r["jid"],
        lid=r["lid"],
        push_name=r["push_name"],
        qr=r["qr"],
        qr_expires_at=r["qr_expires_at"],
        awaiting_scan_since=r["awaiting_scan_since"],
        paired_at=r["paired_at"],
        last_connected_at=r["last_connected_at"],
        banned_until=r["banned_until"],
        desired_running=r["desired_running"],
        shared_with=frozenset(r["shared_with"]),
    )


#: The columns of ``session_of``, in ``session_row``'s order.
SESSION_COLUMNS = (
    "id",
    "organization_id",
    "owner_id",
    "name",
    "created_at",
    "status",
    "status_reason",
    "status_changed_at",
    "jid",
    "lid",
    "push_name",
    "qr",
    "qr_expires_at",
    "awaiting_scan_since",
    "paired_at",
    "last_connected_at",
    "banned_until",
    "desired_running",
    "shared_with",
)


def session_of(
    values: Sequence[Any],
    time: Callable[[Any], datetime],
    jid: Callable[[str], Jid],
    json: Callable[[Any], list[Any]],
) -> Session:
    """A session from a row of ``SESSION_COLUMNS`` as the driver returns it (see
    ``contact_of``): for the sessions of every live group (``SqlSessions.get_many``)."""
    (id_, org, owner, name, ca, status, reason, changed, jid_text, lid, push, qr) = values[:12]
    qr_expires, scan_since, paired, connected, banned, running, shared = values[12:]
    return Session(
        id=id_,
        organization_id=org,
        owner_id=owner,
        name=name,
        created_at=time(ca),
        status=SessionStatus(status),
        status_reason=reason,
        status_changed_at=None if changed is None else time(changed),
        jid=None if jid_text is None else jid(jid_text),
        lid=None if lid is None else jid(lid),
        push_name=push,
        qr=qr,
        qr_expires_at=None if qr_expires is None else time(qr_expires),
        awaiting_scan_since=None if scan_since is None else time(scan_since),
        paired_at=None if paired is None else time(paired),
        last_connected_at=None if connected is None else time(connected),
        banned_until=None if banned is None else time(banned),
        desired_running=bool(running),
        shared_with=frozenset(json(shared)),
    )


def contact_row(c: Contact) -> Values:
    return {
        "id": c.id,
        "organization_id": c.organization_id,
        "session_id": c.session_id,
        "jid": c.jid,
        "lid": c.lid,
        "name": c.name,
        "push_name": c.push_name,
        "business_name": c.business_name,
        "is_business": c.is_business,
        "external_ref": c.external_ref,
        "metadata": dict(c.metadata),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def to_contact(row: Row[Any]) -> Contact:
    r = _m(row)
    return Contact(
        id=r["id"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        jid=r["jid"],
        lid=r["lid"],
        name=r["name"],
        push_name=r["push_name"],
        business_name=r["business_name"],
        is_business=r["is_business"],
        external_ref=r["external_ref"],
        metadata=dict(r["metadata"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def conversation_row(c: Conversation) -> Values:
    return {
        "id": c.id,
        "organization_id": c.organization_id,
        "session_id": c.session_id,
        "chat": c.chat,
        "name": c.name,
        "status": str(c.status),
        "assignee_id": c.assignee_id,
        "unread_count": c.unread_count,
        "last_message_at": c.last_message_at,
        "last_message_preview": c.last_message_preview,
        "last_message_id": c.last_message_id,
        "external_ref": c.external_ref,
        "metadata": dict(c.metadata),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "activity_at": c.last_message_at or c.created_at,
    }


def to_conversation(row: Row[Any]) -> Conversation:
    r = _m(row)
    return Conversation(
        id=r["id"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        chat=r["chat"],
        name=r["name"],
        status=ConversationStatus(r["status"]),
        assignee_id=r["assignee_id"],
        unread_count=r["unread_count"],
        last_message_at=r["last_message_at"],
        last_message_preview=r["last_message_preview"],
        last_message_id=r["last_message_id"],
        external_ref=r["external_ref"],
        metadata=dict(r["metadata"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


#: The columns of ``contact_params`` and ``contact_of``, in ``contact_row``'s order.
CONTACT_COLUMNS = (
    "id",
    "organization_id",
    "session_id",
    "jid",
    "lid",
    "name",
    "push_name",
    "business_name",
    "is_business",
    "external_ref",
    "metadata",
    "created_at",
    "updated_at",
)

#: The columns of ``conversation_params`` (all of them) and of ``conversation_of`` (all but
#: ``activity_at``, which is derived), in ``conversation_row``'s order.
CONVERSATION_COLUMNS = (
    "id",
    "organization_id",
    "session_id",
    "chat",
    "name",
    "status",
    "assignee_id",
    "unread_count",
    "last_message_at",
    "last_message_preview",
    "last_message_id",
    "external_ref",
    "metadata",
    "created_at",
    "updated_at",
    "activity_at",
)


def contact_params(c: Contact, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The values of ``contact_row`` as the driver takes them, in ``CONTACT_COLUMNS`` order
    (see ``message_params``): for upserts that skip per-row bind processing."""
    lid, metadata = c.lid, c.metadata
    return (
        c.id,
        c.organization_id,
        c.session_id,
        str(c.jid),
        None if lid is None else str(lid),
        c.name,
        c.push_name,
        c.business_name,
        c.is_business,
        c.external_ref,
        json_text(dict(metadata)) if metadata else "{}",
        time(c.created_at),
        time(c.updated_at),
    )


def conversation_params(c: Conversation, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The values of ``conversation_row`` as the driver takes them, in
    ``CONVERSATION_COLUMNS`` order (see ``message_params``)."""
    last, metadata, created = c.last_message_at, c.metadata, c.created_at
    created_value = time(created)
    last_value = None if last is None else time(last)
    return (
        c.id,
        c.organization_id,
        c.session_id,
        str(c.chat),
        c.name,
        str(c.status),
        c.assignee_id,
        c.unread_count,
        last_value,
        c.last_message_preview,
        c.last_message_id,
        c.external_ref,
        json_text(dict(metadata)) if metadata else "{}",
        created_value,
        time(c.updated_at),
        created_value if last_value is None else last_value,
    )


def contact_of(
    values: Sequence[Any],
    time: Callable[[Any], datetime],
    jid: Callable[[str], Jid],
    json: Callable[[Any], dict[str, Any]],
) -> Contact:
    """A contact from a row of ``CONTACT_COLUMNS`` as the driver returns it, ``time``,
    ``jid`` and ``json`` doing what the columns' result processing would: for look-ups that
    skip SQLAlchemy's per-row, per-column work (``SqlContacts.get_many``)."""
    (id_, org, session, jid_text, lid, name, push, business, is_business, ref, meta, ca, ua) = (
        values
    )
    return Contact(
        id=id_,
        organization_id=org,
        session_id=session,
        jid=jid(jid_text),
        lid=None if lid is None else jid(lid),
        name=name,
        push_name=push,
        business_name=business,
        is_business=bool(is_business),
        external_ref=ref,
        metadata=json(meta),
        created_at=time(ca),
        updated_at=time(ua),
    )


def conversation_of(
    values: Sequence[Any],
    time: Callable[[Any], datetime],
    jid: Callable[[str], Jid],
    json: Callable[[Any], dict[str, Any]],
) -> Conversation:
    """A conversation from a row of ``CONVERSATION_COLUMNS`` but the last, as the driver
    returns it (see ``contact_of``)."""
    (id_, org, session, chat, name, status, assignee, unread, last_at, preview, last_id) = values[
        :11
    ]
    ref, meta, ca, ua = values[11:15]
    return Conversation(
        id=id_,
        organization_id=org,
        session_id=session,
        chat=jid(chat),
        name=name,
        status=ConversationStatus(status),
        assignee_id=assignee,
        unread_count=unread,
        last_message_at=None if last_at is None else time(last_at),
        last_message_preview=preview,
        last_message_id=last_id,
        external_ref=ref,
        metadata=json(meta),
        created_at=time(ca),
        updated_at=time(ua),
    )


def _media(media: Media | None) -> Values | None:
    if media is None:
        return None
    return {
        "mime": media.mime,
        "size": media.size,
        "sha256": media.sha256,
        "file_name": media.file_name,
        "storage_key": media.storage_key,
        "engine_ref": media.engine_ref,
        "width": media.width,
        "height": media.height,
        "duration_seconds": media.duration_seconds,
    }


def _location(location: Location | None) -> Values | None:
    if location is None:
        return None
    return {
        "latitude": location.latitude,
        "longitude": location.longitude,
        "name": location.name,
        "address": location.address,
    }


def _contact_card(card: ContactCard | None) -> Values | None:
    if card is None:
        return None
    return {"display_name": card.display_name, "vcard": card.vcard}


def _poll(poll: Poll | None) -> Values | None:
    if poll is None:
        return None
    return {
        "question": poll.question,
        "options": list(poll.options),
        "selectable_count": poll.selectable_count,
    }


def message_row(m: Message) -> Values:
    return {
        "id": m.id,
        "organization_id": m.organization_id,
        "session_id": m.session_id,
        "conversation_id": m.conversation_id,
        "wa_id": m.wa_id,
        "chat": m.chat,
        "sender": m.sender,
        "sender_alt": m.sender_alt,
        "push_name": m.push_name,
        "direction": str(m.direction),
        "kind": str(m.kind),
        "text": m.text,
        "media": _media(m.media),
        "location": _location(m.location),
        "contact": _contact_card(m.contact),
        "poll": _poll(m.poll),
        "quoted_wa_id": m.quoted_wa_id,
        "target_wa_id": m.target_wa_id,
        "unsupported_type": m.unsupported_type,
        "reactions": dict(m.reactions),
        "edited_at": m.edited_at,
        "revoked_at": m.revoked_at,
        "timestamp": m.timestamp,
        "status": str(m.status),
        "status_error": m.status_error,
        "created_at": m.created_at,
    }


#: The columns of ``message_params``, in its order (that of ``message_row``).
MESSAGE_COLUMNS = (
    "id",
    "organization_id",
    "session_id",
    "conversation_id",
    "wa_id",
    "chat",
    "sender",
    "sender_alt",
    "push_name",
    "direction",
    "kind",
    "text",
    "media",
    "location",
    "contact",
    "poll",
    "quoted_wa_id",
    "target_wa_id",
    "unsupported_type",
    "reactions",
    "edited_at",
    "revoked_at",
    "timestamp",
    "status",
    "status_error",
    "created_at",
)


def message_params(m: Message, time: Callable[[datetime], Any], created_at: Any) -> tuple[Any, ...]:
    """The values of ``message_row`` as the driver takes them, in ``MESSAGE_COLUMNS`` order:
    what the columns' bind processing would make of them (JIDs as text, JSON serialized,
    ``time`` applied to every datetime), done here so a bulk insert can skip that per-row
    work (``SqlMessages.add_new``). ``created_at`` is ``time(m.created_at)``, given by the
    caller: the messages of one unit of work share it. A test holds the result to the Core
    path, row for row."""
    sender, sender_alt, reactions = m.sender, m.sender_alt, m.reactions
    media, location, contact, poll = m.media, m.location, m.contact, m.poll
    edited_at, revoked_at = m.edited_at, m.revoked_at
    return (
        m.id,
        m.organization_id,
        m.session_id,
        m.conversation_id,
        m.wa_id,
        str(m.chat),
        None if sender is None else str(sender),
        None if sender_alt is None else str(sender_alt),
        m.push_name,
        str(m.direction),
        str(m.kind),
        m.text,
        None if media is None else json_text(_media(media)),
        None if location is None else json_text(_location(location)),
        None if contact is None else json_text(_contact_card(contact)),
        None if poll is None else json_text(_poll(poll)),
        m.quoted_wa_id,
        m.target_wa_id,
        m.unsupported_type,
        json_text(reactions) if reactions else "{}",
        None if edited_at is None else time(edited_at),
        None if revoked_at is None else time(revoked_at),
        time(m.timestamp),
        str(m.status),
        m.status_error,
        created_at,
    )


def _poll_of(values: Values | None) -> Poll | None:
    """The poll of a message's ``poll`` column as JSON decodes it (see ``_poll``)."""
    if not values:
        return None
    return Poll(
        question=values["question"],
        options=tuple(values["options"]),
        selectable_count=values["selectable_count"],
    )


def to_message(row: Row[Any]) -> Message:
    r = _m(row)
    return Message(
        id=r["id"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        conversation_id=r["conversation_id"],
        wa_id=r["wa_id"],
        chat=r["chat"],
        sender=r["sender"],
        sender_alt=r["sender_alt"],
        push_name=r["push_name"],
        direction=Direction(r["direction"]),
        kind=MessageKind(r["kind"]),
        text=r["text"],
        media=Media(**r["media"]) if r["media"] else None,
        location=Location(**r["location"]) if r["location"] else None,
        contact=ContactCard(**r["contact"]) if r["contact"] else None,
        poll=_poll_of(r["poll"]),
        quoted_wa_id=r["quoted_wa_id"],
        target_wa_id=r["target_wa_id"],
        unsupported_type=r["unsupported_type"],
        reactions=dict(r["reactions"]),
        edited_at=r["edited_at"],
        revoked_at=r["revoked_at"],
        timestamp=r["timestamp"],
        status=MessageStatus(r["status"]),
        status_error=r["status_error"],
        created_at=r["created_at"],
    )


def message_of(
    values: Sequence[Any],
    time: Callable[[Any], datetime],
    jid: Callable[[str], Jid],
    json: Callable[[Any], dict[str, Any]],
) -> Message:
    """A message from a row of ``MESSAGE_COLUMNS`` as the driver returns it (see
    ``contact_of``): the outbox reads the messages of every batch it claims and records
    (``SqlMessages.get_many``). A test holds it to ``to_message``."""
    (id_, org, session, conversation, wa_id, chat, sender, sender_alt, push, direction) = values[
        :10
    ]
    (kind, text, media, location, contact, poll, quoted, target, unsupported) = values[10:19]
    reactions, edited, revoked, timestamp, status, error, created = values[19:]
    media_values, location_values, card_values, poll_values = (
        None if v is None else json(v) for v in (media, location, contact, poll)
    )
    return Message(
        id=id_,
        organization_id=org,
        session_id=session,
        conversation_id=conversation,
        wa_id=wa_id,
        chat=jid(chat),
        sender=None if sender is None else jid(sender),
        sender_alt=None if sender_alt is None else jid(sender_alt),
        push_name=push,
        direction=Direction(direction),
        kind=MessageKind(kind),
        text=text,
        media=Media(**media_values) if media_values else None,
        location=Location(**location_values) if location_values else None,
        contact=ContactCard(**card_values) if card_values else None,
        poll=_poll_of(poll_values),
        quoted_wa_id=quoted,
        target_wa_id=target,
        unsupported_type=unsupported,
        reactions=json(reactions),
        edited_at=None if edited is None else time(edited),
        revoked_at=None if revoked is None else time(revoked),
        timestamp=time(timestamp),
        status=MessageStatus(status),
        status_error=error,
        created_at=time(created),
    )


def outbox_row(e: OutboxEntry) -> Values:
    return {
        "id": e.id,
        "organization_id": e.organization_id,
        "session_id": e.session_id,
        "message_id": e.message_id,
        "state": str(e.state),
        "attempts": e.attempts,
        "next_attempt_at": e.next_attempt_at,
        "last_error": e.last_error,
        "throttled": e.throttled,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    }


#: The columns of ``outbox_params``, in its order (that of ``outbox_row``).
OUTBOX_COLUMNS = (
    "id",
    "organization_id",
    "session_id",
    "message_id",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "throttled",
    "created_at",
    "updated_at",
)


def outbox_params(e: OutboxEntry, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The values of ``outbox_row`` as the driver takes them, in ``OUTBOX_COLUMNS`` order
    (see ``message_params``): SendMessage adds one entry per send. A test holds the result to
    the Core path."""
    return (
        e.id,
        e.organization_id,
        e.session_id,
        e.message_id,
        str(e.state),
        e.attempts,
        time(e.next_attempt_at),
        e.last_error,
        e.throttled,
        time(e.created_at),
        time(e.updated_at),
    )


def to_outbox(row: Row[Any]) -> OutboxEntry:
    r = _m(row)
    return OutboxEntry(
        id=r["id"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        message_id=r["message_id"],
        state=OutboxState(r["state"]),
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
        throttled=r["throttled"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def outbox_of(values: Sequence[Any], time: Callable[[Any], datetime]) -> OutboxEntry:
    """An outbox entry from a row of ``OUTBOX_COLUMNS`` as the driver returns it (see
    ``contact_of``): the outbox reads back the entries of every batch it records
    (``SqlOutbox.get_many``). A test holds it to ``to_outbox``."""
    (id_, org, session, message_id, state, attempts, next_at, error, throttled, ca, ua) = values
    return OutboxEntry(
        id=id_,
        organization_id=org,
        session_id=session,
        message_id=message_id,
        state=OutboxState(state),
        attempts=attempts,
        next_attempt_at=time(next_at),
        last_error=error,
        throttled=bool(throttled),
        created_at=time(ca),
        updated_at=time(ua),
    )


def attempt_row(a: SendAttempt) -> Values:
    return {
        "id": a.id,
        "organization_id": a.organization_id,
        "session_id": a.session_id,
        "outbox_id": a.outbox_id,
        "message_id": a.message_id,
        "attempt": a.attempt,
        "started_at": a.started_at,
        "latency_ms": a.latency_ms,
        "request_summary": a.request_summary,
        "ok": a.ok,
        "response": a.response,
        "error": a.error,
    }


#: The columns of ``attempt_params``, in its order (that of ``attempt_row``).
ATTEMPT_COLUMNS = (
    "id",
    "organization_id",
    "session_id",
    "outbox_id",
    "message_id",
    "attempt",
    "started_at",
    "latency_ms",
    "request_summary",
    "ok",
    "response",
    "error",
)


def attempt_params(a: SendAttempt, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The values of ``attempt_row`` as the driver takes them, in ``ATTEMPT_COLUMNS`` order
    (see ``message_params``): the outbox records an attempt per send. A test holds the
    result to the Core path."""
    return (
        a.id,
        a.organization_id,
        a.session_id,
        a.outbox_id,
        a.message_id,
        a.attempt,
        time(a.started_at),
        a.latency_ms,
        a.request_summary,
        a.ok,
        a.response,
        a.error,
    )


def to_attempt(row: Row[Any]) -> SendAttempt:
    r = _m(row)
    return SendAttempt(
        id=r["id"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        outbox_id=r["outbox_id"],
        message_id=r["message_id"],
        attempt=r["attempt"],
        started_at=r["started_at"],
        latency_ms=r["latency_ms"],
        request_summary=r["request_summary"],
        ok=r["ok"],
        response=r["response"],
        error=r["error"],
    )


def to_stored_event(row: Row[Any]) -> StoredEvent:
    r = _m(row)
    return StoredEvent(
        id=r["id"],
        name=r["name"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        occurred_at=r["occurred_at"],
        data=dict(r["data"]),
        assignee_id=r["assignee_id"],
    )


def webhook_row(w: Webhook) -> Values:
    return {
        "id": w.id,
        "organization_id": w.organization_id,
        "session_id": w.session_id,
        "url": w.url,
        "events": sorted(w.events),
        "secrets": list(w.secrets),
        "created_at": w.created_at,
        "active": w.active,
    }


def to_webhook(row: Row[Any]) -> Webhook:
    r = _m(row)
    return Webhook(
        id=r["id"],
        organization_id=r["organization_id"],
        session_id=r["session_id"],
        url=r["url"],
        events=frozenset(r["events"]),
        secrets=tuple(r["secrets"]),
        active=r["active"],
        created_at=r["created_at"],
    )


def delivery_row(d: WebhookDelivery) -> Values:
    return {
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "status": str(d.status),
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "delivered_at": d.delivered_at,
    }


def to_delivery(row: Row[Any]) -> WebhookDelivery:
    r = _m(row)
    return WebhookDelivery(
        id=r["id"],
        webhook_id=r["webhook_id"],
        event_id=int(r["event_id"]),
        status=DeliveryStatus(r["status"]),
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_status_code=r["last_status_code"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        delivered_at=r["delivered_at"],
    )


def webhook_attempt_row(a: DeliveryAttempt) -> Values:
    return {
        "id": a.id,
        "delivery_id": a.delivery_id,
        "attempt": a.attempt,
        "at": a.at,
        "status_code": a.status_code,
        "error": a.error,
        "latency_ms": a.latency_ms,
    }


def to_webhook_attempt(row: Row[Any]) -> DeliveryAttempt:
    r = _m(row)
    return DeliveryAttempt(
        id=r["id"],
        delivery_id=r["delivery_id"],
        attempt=r["attempt"],
        at=r["at"],
        status_code=r["status_code"],
        error=r["error"],
        latency_ms=r["latency_ms"],
    )
