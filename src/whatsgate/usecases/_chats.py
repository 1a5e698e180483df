"""Finding or creating the conversation and contact a message belongs to."""

from __future__ import annotations

from datetime import datetime

from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session
from whatsgate.ports.repositories import UnitOfWork


async def conversation_for(
    uow: UnitOfWork, session: Session, chat: Jid, at: datetime, *, name: str | None = None
) -> tuple[Conversation, bool]:
    """The session's conversation with ``chat``, created ``pending`` when new.
    Returns it and whether it was created. The caller saves it."""
    found = await uow.conversations.get_by_chat(session.id, chat)
    if found is not None:
        if name and not found.name:
            found.name = name
        return found, False
    conversation = Conversation(
        organization_id=session.organization_id,
        session_id=session.id,
        chat=chat,
        name=name,
        created_at=at,
        updated_at=at,
    )
    return conversation, True


async def contact_for(
    uow: UnitOfWork,
    session: Session,
    jid: Jid,
    at: datetime,
    *,
    alt: Jid | None = None,
    push_name: str | None = None,
    name: str | None = None,
) -> tuple[Contact, bool]:
    """The contact known by ``jid`` (or its alternate address), merged with what is new.
    Returns it and whether anything changed (new or merged). The caller saves it."""
    phone = next((j for j in (jid, alt) if j is not None and j.is_user), None)
    lid = next((j for j in (jid, alt) if j is not None and j.is_lid), None)
    found = None
    for key in (phone, lid):
        if key is not None and found is None:
            found = await uow.contacts.get_by_jid(session.id, key)
    if found is None:
        primary = phone or lid or jid
        contact = Contact(
            organization_id=session.organization_id,
            session_id=session.id,
            jid=primary,
            lid=lid if primary != lid else None,
            name=name,
            push_name=push_name,
            created_at=at,
            updated_at=at,
        )
        return contact, True
    changed = found.merge(at, name=name, push_name=push_name, phone_jid=phone, lid=lid)
    return found, changed
