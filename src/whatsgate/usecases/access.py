"""Tenancy: what a principal may see and change, checked before any other use case runs.

Every lookup by id goes through here, so nothing of one organization is ever visible to
another: a thing of another organization is "not found", exactly like a thing that does not
exist (its existence is private). Inside the organization, an agent who may not see a session
gets ``permission_denied``.
"""

from __future__ import annotations

import logging

from whatsgate.domain.auth import Principal
from whatsgate.domain.conversation import Conversation
from whatsgate.domain.errors import (
    ConversationNotFound,
    MessageNotFound,
    PermissionDenied,
    SessionNotFound,
)
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message
from whatsgate.domain.session import Session
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("whatsgate.access")


async def visible_session(
    uow: UnitOfWork, principal: Principal, session_id: str, *, read: Session | None = None
) -> Session:
    """The session, if ``principal`` may see it (``Access.session``, inside a unit of work
    the caller holds, so a use case checks access and reads in one). ``read``: the session
    as this unit of work already read it (not read again)."""
    session = read if read is not None else await uow.sessions.get(session_id)
    if session is None or session.organization_id != principal.organization_id:
        raise SessionNotFound(session_id=session_id)
    if not principal.can_see(session):
        raise PermissionDenied("This session is not shared with you.", session_id=session_id)
    return session


async def visible_sender(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    to: str,
    *,
    read: Session | None = None,
) -> Session:
    """The session a message to ``to`` may be sent from, read in the caller's unit of work:
    one ``principal`` may see, or one where the conversation with ``to`` is assigned to them
    (an attendant answers); the same errors as ``visible_session`` otherwise. ``read``: as
    for ``visible_session``."""
    try:
        return await visible_session(uow, principal, session_id, read=read)
    except PermissionDenied:
        session = read if read is not None else await uow.sessions.get(session_id)
        conversation = None
        if session is not None:
            conversation = await uow.conversations.get_by_chat(session_id, Jid.parse(to))
        if session is None or conversation is None:
            raise
        if conversation.assignee_id != principal.user_id:
            raise
        return session


async def visible_conversation(
    uow: UnitOfWork, principal: Principal, conversation_id: str
) -> Conversation:
    """The conversation, if ``principal`` may see it (``Access.conversation``), inside a unit
    of work the caller holds."""
    conversation = await uow.conversations.get(conversation_id)
    if conversation is None or conversation.organization_id != principal.organization_id:
        raise ConversationNotFound(conversation_id=conversation_id)
    if conversation.assignee_id != principal.user_id:
        await visible_session(uow, principal, conversation.session_id)
    return conversation


def _can_manage(principal: Principal, session: Session) -> bool:
    return principal.is_admin or session.owner_id == principal.user_id


class Access:
    """Principal-scoped lookups.

    - Sessions: admins see every session of their organization; agents those they own or
      that are shared with them. Renaming, sharing and deleting need an admin or the owner.
    - Conversations: visible with their session, and to the agent they are assigned to.
    - Messages: visible with their conversation; an agent may send to the chat of a
      conversation assigned to them, even on a session not shared with them.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def session(
        self, principal: Principal, session_id: str, *, manage: bool = False
    ) -> Session:
        async with self.uow() as uow:
            session = await visible_session(uow, principal, session_id)
        if manage and not _can_manage(principal, session):
            raise PermissionDenied(
                "Only an admin or the session's owner may do that.", session_id=session_id
            )
        return session

    async def sender(self, principal: Principal, session_id: str, to: str) -> Session:
        """The session a message to ``to`` may be sent from (``visible_sender``)."""
        async with self.uow() as uow:
            return await visible_sender(uow, principal, session_id, to)

    async def sessions(self, principal: Principal) -> list[Session]:
        async with self.uow() as uow:
            found = await uow.sessions.all(principal.organization_id)
        return [s for s in found if principal.can_see(s)]

    async def conversation(self, principal: Principal, conversation_id: str) -> Conversation:
        async with self.uow() as uow:
            return await visible_conversation(uow, principal, conversation_id)

    async def message(self, principal: Principal, message_id: str) -> Message:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id)
        if message is None or message.organization_id != principal.organization_id:
            raise MessageNotFound(message_id=message_id)
        await self.conversation(principal, message.conversation_id)
        return message
