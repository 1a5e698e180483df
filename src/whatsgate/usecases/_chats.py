"""Finding or creating the conversation and contact a message belongs to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session
from whatsgate.ports.repositories import UnitOfWork


class ChatLookup:
    """Contacts and conversations by address, for one unit of work: answered from what
    ``load`` fetched (one query per kind for a whole batch of JIDs, absences remembered too),
    else from the repositories, once per address.

    It answers what the repositories answered when first asked: it never sees what the
    caller staged since, so it is for callers that write only at the end (``MessageIngestion``
    keeps what it changed in its own maps). Found entities are handed out as the same
    object each time."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._contacts: dict[tuple[str, Jid], Contact | None] = {}
        self._conversations: dict[tuple[str, Jid], Conversation | None] = {}

    async def load(self, session_id: str, jids: Iterable[Jid]) -> None:
        """Fetch the session's contacts known by any of ``jids`` and its conversations with
        them or with those contacts' other address: one query each, for those not asked yet."""
        wanted = {j for j in jids if (session_id, j) not in self._contacts}
        if wanted:
            found = await self.uow.contacts.get_many(session_id, list(wanted))
            for jid in wanted:
                self._contacts[(session_id, jid)] = None
            # As get_by_jid: the first by id when two contacts share an address.
            for contact in reversed(found):
                for key in (contact.jid, contact.lid):
                    if key in wanted:
                        self._contacts[(session_id, key)] = contact
            wanted.update(k for c in found for k in (c.jid, c.lid) if k is not None)
        chats = {j for j in wanted if (session_id, j) not in self._conversations}
        if chats:
            for chat in chats:
                self._conversations[(session_id, chat)] = None
            for conversation in await self.uow.conversations.get_many_by_chat(
                session_id, list(chats)
            ):
                self._conversations[(session_id, conversation.chat)] = conversation

    async def load_sessions(self, wanted: Mapping[str, Iterable[Jid]]) -> None:
        """``load`` for several sessions at once: one query per kind for all of them (a
        group of live messages from many sessions)."""
        asked = {
            (session_id, jid)
            for session_id, jids in wanted.items()
            for jid in jids
            if (session_id, jid) not in self._contacts
        }
        if asked:
            found = await self.uow.contacts.get_many_of_sessions(
                sorted({s for s, _ in asked}), list({j for _, j in asked})
            )
            for key in asked:
                self._contacts[key] = None
            for contact in reversed(found):  # as get_by_jid: the first by id wins
                for jid in (contact.jid, contact.lid):
                    if jid is not None and (contact.session_id, jid) in asked:
                        self._contacts[(contact.session_id, jid)] = contact
            asked.update((c.session_id, k) for c in found for k in (c.jid, c.lid) if k is not None)
        chats = {key for key in asked if key not in self._conversations}
        if chats:
            for key in chats:
                self._conversations[key] = None
            for conversation in await self.uow.conversations.get_many_by_chat_of_sessions(
                sorted({s for s, _ in chats}), list({j for _, j in chats})
            ):
                key = (conversation.session_id, conversation.chat)
                if key in chats:
                    self._conversations[key] = conversation

    async def contact(self, session_id: str, jid: Jid) -> Contact | None:
        """As ``ContactRepository.get_by_jid``."""
        key = (session_id, jid)
        if key in self._contacts:
            return self._contacts[key]
        found = self._contacts[key] = await self.uow.contacts.get_by_jid(session_id, jid)
        return found

    async def conversation(self, session_id: str, chat: Jid) -> Conversation | None:
        """As ``ConversationRepository.get_by_chat``."""
        key = (session_id, chat)
        if key in self._conversations:
            return self._conversations[key]
        found = self._conversations[key] = await self.uow.conversations.get_by_chat(
            session_id, chat
        )
        return found


async def conversation_for(
    uow: UnitOfWork,
    session: Session,
    chat: Jid,
    at: datetime,
    *,
    name: str | None = None,
    lookup: ChatLookup | None = None,
) -> tuple[Conversation, bool]:
    """The session's conversation with ``chat``, created ``pending`` when new (looked up
    through ``lookup`` when given). Returns it and whether it was created. The caller saves
    it."""
    if lookup is not None:
        found = await lookup.conversation(session.id, chat)
    else:
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
    lookup: ChatLookup | None = None,
) -> tuple[Contact, bool]:
    """The contact known by ``jid`` (or its alternate address), merged with what is new
    (looked up through ``lookup`` when given). Returns it and whether anything changed (new
    or merged). The caller saves it."""
    phone = next((j for j in (jid, alt) if j is not None and j.is_user), None)
    lid = next((j for j in (jid, alt) if j is not None and j.is_lid), None)
    found = None
    for key in (phone, lid):
        if key is not None and found is None:
            if lookup is not None:
                found = await lookup.contact(session.id, key)
            else:
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
