"""Entities with every field filled, for the contract tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from whatsgate.domain.conversation import Contact, Conversation, ConversationStatus
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
from whatsgate.domain.outbox import OutboxEntry, OutboxState
from whatsgate.domain.session import Session, SessionStatus
from whatsgate.ports.repositories import UnitOfWorkFactory

#: Microseconds on purpose: they must survive the round trip.
T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def phone(n: int) -> Jid:
    return Jid.phone(f"+5566996{n:06d}")


@dataclass
class World:
    organization: Organization
    admin: User
    session: Session

    @property
    def org_id(self) -> str:
        return self.organization.id

    @property
    def session_id(self) -> str:
        return self.session.id


async def seed(uow_factory: UnitOfWorkFactory, name: str = "Acme") -> World:
    """An organization, its admin and one session, committed."""
    organization = Organization(name=name, created_at=T0)
    admin = User(
        organization_id=organization.id,
        name="Ana Admin",
        email="ana@acme.example",
        role=Role.ADMIN,
        created_at=T0,
    )
    session = Session(
        organization_id=organization.id, owner_id=admin.id, name="Sales", created_at=T0
    )
    async with uow_factory() as uow:
        await uow.organizations.add(organization)
        await uow.users.add(admin)
        await uow.sessions.add(session)
        await uow.commit()
    return World(organization, admin, session)


async def add_session(uow_factory: UnitOfWorkFactory, world: World, name: str) -> Session:
    session = Session(
        organization_id=world.org_id, owner_id=world.admin.id, name=name, created_at=T0
    )
    async with uow_factory() as uow:
        await uow.sessions.add(session)
        await uow.commit()
    return session


def full_session(world: World) -> Session:
    return Session(
        organization_id=world.org_id,
        owner_id=world.admin.id,
        name="Support",
        created_at=at(1),
        status=SessionStatus.BANNED,
        status_reason="banned",
        status_changed_at=at(2),
        jid=phone(1),
        lid=Jid("271600000001", "lid"),
        push_name="Acme Support",
        qr="2@abc,def",
        qr_expires_at=at(3),
        awaiting_scan_since=at(4),
        paired_at=at(5),
        last_connected_at=at(6),
        banned_until=at(7),
        desired_running=True,
        shared_with=frozenset({"user-b", "user-a"}),
    )


def contact(world: World, jid: Jid, **fields: Any) -> Contact:
    values: dict[str, Any] = {
        "organization_id": world.org_id,
        "session_id": world.session_id,
        "jid": jid,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return Contact(**values)


def full_contact(world: World) -> Contact:
    return contact(
        world,
        phone(2),
        lid=Jid("271600000002", "lid"),
        name="João Ñandú",
        push_name="Jão",
        business_name="Ñandú Ltda",
        is_business=True,
        external_ref="crm:42",
        metadata={"tier": "gold", "tags": ["a", "b"], "score": 1.5, "nested": {"x": None}},
        created_at=at(1),
        updated_at=at(2),
    )


def conversation(world: World, chat: Jid, **fields: Any) -> Conversation:
    values: dict[str, Any] = {
        "organization_id": world.org_id,
        "session_id": world.session_id,
        "chat": chat,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return Conversation(**values)


def full_conversation(world: World) -> Conversation:
    return conversation(
        world,
        Jid.group("120363000000000001"),
        name="Equipe de Vendas",
        status=ConversationStatus.ACTIVE,
        assignee_id=world.admin.id,
        unread_count=3,
        last_message_at=at(10),
        last_message_preview="olá 👋",
        last_message_id="m-1",
        external_ref="ticket:7",
        metadata={"lead": 9},
        created_at=at(1),
        updated_at=at(11),
    )


def message(
    world: World, conversation_id: str, wa_id: str | None, timestamp: datetime, **fields: Any
) -> Message:
    values: dict[str, Any] = {
        "organization_id": world.org_id,
        "session_id": world.session_id,
        "conversation_id": conversation_id,
        "wa_id": wa_id,
        "chat": phone(3),
        "sender": phone(3),
        "direction": Direction.IN,
        "kind": MessageKind.TEXT,
        "text": f"text {wa_id}",
        "timestamp": timestamp,
        "status": MessageStatus.RECEIVED,
        "created_at": timestamp,
    }
    values.update(fields)
    return Message(**values)


def full_messages(world: World, conversation_id: str) -> list[Message]:
    """One message of each shape, every optional field set."""
    common: dict[str, Any] = {
        "sender_alt": Jid("271600000003", "lid"),
        "push_name": "Zé",
        "quoted_wa_id": "QUOTED",
        "reactions": {str(phone(4)): "👍", str(phone(5)): "❤️"},
        "edited_at": at(20),
        "revoked_at": at(21),
        "status_error": "boom",
    }
    return [
        message(
            world,
            conversation_id,
            "MEDIA",
            at(1),
            kind=MessageKind.DOCUMENT,
            direction=Direction.OUT,
            status=MessageStatus.FAILED,
            text="caption",
            media=Media(
                mime="application/pdf",
                size=1234,
                sha256="ab" * 32,
                file_name="contrato.pdf",
                storage_key="media/x",
                engine_ref="ref",
                width=10,
                height=20,
                duration_seconds=3,
            ),
            **common,
        ),
        message(
            world,
            conversation_id,
            "LOCATION",
            at(2),
            kind=MessageKind.LOCATION,
            text=None,
            location=Location(latitude=-15.6, longitude=-56.1, name="Cuiabá", address="Centro"),
            **common,
        ),
        message(
            world,
            conversation_id,
            "CONTACT",
            at(3),
            kind=MessageKind.CONTACT,
            contact=ContactCard(display_name="Maria", vcard="BEGIN:VCARD\nEND:VCARD"),
            **common,
        ),
        message(
            world,
            conversation_id,
            "POLL",
            at(4),
            kind=MessageKind.POLL,
            poll=Poll(question="Lunch?", options=("yes", "no"), selectable_count=2),
            **common,
        ),
        message(
            world,
            conversation_id,
            "REACTION",
            at(5),
            kind=MessageKind.REACTION,
            target_wa_id="MEDIA",
            text="🔥",
            **common,
        ),
        message(
            world,
            conversation_id,
            "UNSUPPORTED",
            at(6),
            kind=MessageKind.UNSUPPORTED,
            unsupported_type="viewOnceMessage",
            sender=None,
            text=None,
        ),
    ]


def outbox_entry(world: World, message_id: str, due: datetime, **fields: Any) -> OutboxEntry:
    values: dict[str, Any] = {
        "organization_id": world.org_id,
        "session_id": world.session_id,
        "message_id": message_id,
        "next_attempt_at": due,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return OutboxEntry(**values)


def full_outbox_entry(world: World) -> OutboxEntry:
    return outbox_entry(
        world,
        "msg-1",
        at(30),
        state=OutboxState.FAILED,
        attempts=5,
        last_error="timeout",
        throttled=True,
        created_at=at(1),
        updated_at=at(2),
    )


def fields_of(entity: Any) -> dict[str, Any]:
    """Every field of a slotted dataclass, for whole-entity comparisons."""
    return {name: getattr(entity, name) for name in entity.__dataclass_fields__}
