"""The attendants' inbox: conversations and their messages, ticks and typing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from whatsgate.domain.auth import Principal
from whatsgate.domain.conversation import Contact, Conversation, ConversationStatus
from whatsgate.domain.errors import (
    ContactNotFound,
    ConversationNotFound,
    InvalidInput,
    SessionNotFound,
    UserNotFound,
)
from whatsgate.domain.events import ConversationUpdated, MessageStatusChanged, TypingChanged
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Message, MessageStatus
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import Presence, Receipt, ReceiptType, TypingState
from whatsgate.ports.repositories import (
    ConversationQuery,
    ConversationView,
    Page,
    UnitOfWork,
    UnitOfWorkFactory,
)
from whatsgate.usecases._races import again_if_raced
from whatsgate.usecases.access import visible_conversation, visible_session
from whatsgate.usecases.connections import SessionConnections

log = logging.getLogger("whatsgate.inbox")

MAX_PAGE = 500


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit is between 1 and {MAX_PAGE}.", field="limit")
    return limit


async def _conversation(uow: UnitOfWork, conversation_id: str) -> Conversation:
    found = await uow.conversations.get(conversation_id)
    if found is None:
        raise ConversationNotFound(conversation_id=conversation_id)
    return found


async def _conversation_with(uow: UnitOfWork, session_id: str, chat: Jid) -> Conversation | None:
    """The conversation with ``chat``, also when WhatsApp names the contact by its other
    address (LID or phone number)."""
    found = await uow.conversations.get_by_chat(session_id, chat)
    if found is None and not chat.is_group:
        contact = await uow.contacts.get_by_jid(session_id, chat)
        if contact is not None:
            for address in (contact.jid, contact.lid):
                if found is None and address is not None and address != chat:
                    found = await uow.conversations.get_by_chat(session_id, address)
    return found


async def _check_assignee(uow: UnitOfWork, conversation: Conversation, user_id: str) -> None:
    user = await uow.users.get(user_id)
    if user is None or user.organization_id != conversation.organization_id:
        raise UserNotFound(user_id=user_id)


# -- queries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ListConversationsQuery:
    session_id: str
    status: ConversationStatus | None = None
    assignee_id: str | None = None
    unread_only: bool = False
    text: str | None = None
    cursor: str | None = None
    limit: int = 50


class ListConversations:
    """The inbox of a session.

    - Filters: status, assignee, unread only, text (conversation name, chat, contact name).
    - Newest activity first; cursor pagination (``next_cursor`` until the last page).
    - ``limit`` is 1 to 500; an unknown session is ``session_not_found``.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(
        self, query: ListConversationsQuery, *, principal: Principal | None = None
    ) -> Page[Conversation]:
        """``principal``: check that they may see the session (``Access.session``) in the
        same unit of work."""
        async with self.uow() as uow:
            return await uow.conversations.search(await self._checked(uow, query, principal))

    async def views(
        self, query: ListConversationsQuery, *, principal: Principal | None = None
    ) -> Page[ConversationView]:
        """The same page as the API shows it, read straight from storage (no entities)."""
        async with self.uow() as uow:
            checked = await self._checked(uow, query, principal)
            return await uow.conversations.search_views(checked)

    @staticmethod
    async def _checked(
        uow: UnitOfWork, query: ListConversationsQuery, principal: Principal | None
    ) -> ConversationQuery:
        if principal is not None:
            await visible_session(uow, principal, query.session_id)
        limit = _check_limit(query.limit)
        if principal is None and await uow.sessions.get(query.session_id) is None:
            raise SessionNotFound(session_id=query.session_id)
        return ConversationQuery(
            session_id=query.session_id,
            status=query.status,
            assignee_id=query.assignee_id,
            unread_only=query.unread_only,
            text=(query.text or "").strip() or None,
            cursor=query.cursor,
            limit=limit,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GetMessagesQuery:
    conversation_id: str
    #: A ``next_cursor`` of a previous page: the messages just before it.
    before: str | None = None
    limit: int = 50


class GetMessages:
    """A conversation's messages, a page at a time.

    - Each page runs oldest to newest; the first is the newest; ``next_cursor`` leads to
      older messages.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(
        self, query: GetMessagesQuery, *, principal: Principal | None = None
    ) -> Page[Message]:
        """``principal``: check that they may see the conversation (``Access.conversation``)
        in the same unit of work."""
        async with self.uow() as uow:
            if principal is not None:
                await visible_conversation(uow, principal, query.conversation_id)
            limit = _check_limit(query.limit)
            if principal is None:
                await _conversation(uow, query.conversation_id)
            return await uow.messages.list_for_conversation(
                query.conversation_id, before=query.before, limit=limit
            )


# -- changing a conversation ----------------------------------------------------------------


class _Unset(Enum):
    UNSET = "unset"


#: "Leave as it is" for ``UpdateConversationCommand`` fields where ``None`` means "clear".
UNSET = _Unset.UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignConversationCommand:
    conversation_id: str
    #: ``None`` returns the conversation to the queue.
    assignee_id: str | None


class AssignConversation:
    """Give a conversation to an attendant, or return it to the queue.

    - The assignee is a user of the conversation's organization (``user_not_found``).
    - A pending conversation someone takes becomes active.
    - Publishes ``conversation.updated`` (also to the assignee's personal room).
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: AssignConversationCommand) -> Conversation:
        now = self.clock.now()
        async with self.uow() as uow:
            await uow.begin_write()
            conversation = await _conversation(uow, command.conversation_id)
            if command.assignee_id is not None:
                await _check_assignee(uow, conversation, command.assignee_id)
            conversation.assign(command.assignee_id, now)
            await uow.conversations.save(conversation)
            uow.events.add(ConversationUpdated.of(conversation, now))
            await uow.commit()
        return conversation


@dataclass(frozen=True, slots=True, kw_only=True)
class SetConversationStatusCommand:
    conversation_id: str
    status: ConversationStatus


class SetConversationStatus:
    """Move a conversation between pending, active and closed; publishes
    ``conversation.updated``. A closed conversation reopens (pending) when the contact writes."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: SetConversationStatusCommand) -> Conversation:
        now = self.clock.now()
        async with self.uow() as uow:
            await uow.begin_write()
            conversation = await _conversation(uow, command.conversation_id)
            conversation.set_status(command.status, now)
            await uow.conversations.save(conversation)
            uow.events.add(ConversationUpdated.of(conversation, now))
            await uow.commit()
        return conversation


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateConversationCommand:
    conversation_id: str
    status: ConversationStatus | None = None
    #: A user id, ``None`` to unassign, ``UNSET`` to leave as it is.
    assignee_id: str | _Unset | None = UNSET
    #: The host system's own reference; ``""`` clears it, ``None`` leaves it.
    external_ref: str | None = None
    #: Free-form, replaces what was there; ``None`` leaves it.
    metadata: dict[str, Any] | None = None


class UpdateConversation:
    """Change what the host system and the attendants set on a conversation, all at once.

    - Status, assignee (same rules as AssignConversation), external reference (at most 200
      characters) and metadata (at most 16 KiB), each only when given.
    - Publishes one ``conversation.updated``.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: UpdateConversationCommand) -> Conversation:
        now = self.clock.now()
        async with self.uow() as uow:
            await uow.begin_write()
            conversation = await _conversation(uow, command.conversation_id)
            if not isinstance(command.assignee_id, _Unset):
                if command.assignee_id is not None:
                    await _check_assignee(uow, conversation, command.assignee_id)
                conversation.assign(command.assignee_id, now)
            if command.status is not None:
                conversation.set_status(command.status, now)
            if command.external_ref is not None or command.metadata is not None:
                conversation.link(now, external_ref=command.external_ref, metadata=command.metadata)
            await uow.conversations.save(conversation)
            uow.events.add(ConversationUpdated.of(conversation, now))
            await uow.commit()
        return conversation


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateContactCommand:
    session_id: str
    jid: Jid
    external_ref: str | None = None
    metadata: dict[str, Any] | None = None


class UpdateContact:
    """Link a contact to the host system's records: external reference (``""`` clears it)
    and metadata, each only when given. The contact is found by phone JID or LID."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: UpdateContactCommand) -> Contact:
        async with self.uow() as uow:
            await uow.begin_write()
            contact = await uow.contacts.get_by_jid(command.session_id, command.jid)
            if contact is None:
                raise ContactNotFound(jid=str(command.jid))
            contact.link(
                self.clock.now(), external_ref=command.external_ref, metadata=command.metadata
            )
            await uow.contacts.save(contact)
            await uow.commit()
        return contact


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkReadCommand:
    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkReadResult:
    conversation: Conversation
    #: Whether read receipts reached WhatsApp (False when the session is not connected).
    receipts_sent: bool


class MarkConversationRead:
    """The attendant read the conversation.

    - Unread drops to 0 (``conversation.updated`` when it was not 0 already).
    - Read receipts for the unread inbound messages go to WhatsApp through the live
      connection (per sender in groups); when the session is not connected the conversation
      is still marked read here and the result says no receipt was sent.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, connections: SessionConnections, clock: Clock
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock

    async def __call__(self, command: MarkReadCommand) -> MarkReadResult:
        now = self.clock.now()
        async with self.uow() as uow:
            await uow.begin_write()
            conversation = await _conversation(uow, command.conversation_id)
            unread = conversation.unread_count
            unread_messages: list[Message] = []
            if unread:
                page = await uow.messages.list_for_conversation(
                    conversation.id, limit=min(MAX_PAGE, max(unread * 2, 20))
                )
                inbound = [m for m in page.items if m.is_inbound and m.wa_id and m.shows_in_inbox]
                unread_messages = inbound[-unread:]
            if conversation.mark_read(now):
                await uow.conversations.save(conversation)
                uow.events.add(ConversationUpdated.of(conversation, now))
                await uow.commit()
        sent = await self._send_receipts(conversation, unread_messages)
        return MarkReadResult(conversation=conversation, receipts_sent=sent)

    async def _send_receipts(self, conversation: Conversation, messages: list[Message]) -> bool:
        if not messages:
            return True
        try:
            connection = self.connections.get(conversation.session_id)
            by_sender: dict[Jid | None, list[str]] = {}
            for message in messages:
                sender = message.sender if conversation.is_group else None
                by_sender.setdefault(sender, []).append(message.wa_id or "")
            for sender, wa_ids in by_sender.items():
                await connection.mark_read(conversation.chat, sender, wa_ids)
        except Exception as exc:
            log.warning("session %s: read receipts not sent: %s", conversation.session_id, exc)
            return False
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTypingCommand:
    conversation_id: str
    state: TypingState


class SendTyping:
    """Show the contact that an attendant is typing (or recording, or stopped).

    - Needs the session's live connection (``session_not_running`` otherwise).
    """

    def __init__(self, uow: UnitOfWorkFactory, connections: SessionConnections) -> None:
        self.uow = uow
        self.connections = connections

    async def __call__(self, command: SendTypingCommand) -> None:
        async with self.uow() as uow:
            conversation = await _conversation(uow, command.conversation_id)
        connection = self.connections.get(conversation.session_id)
        await connection.send_typing(conversation.chat, command.state)


# -- what WhatsApp reports ------------------------------------------------------------------


_RECEIPT_STATUS = {
    ReceiptType.DELIVERED: MessageStatus.DELIVERED,
    ReceiptType.READ: MessageStatus.READ,
    ReceiptType.PLAYED: MessageStatus.PLAYED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptCommand:
    session_id: str
    receipt: Receipt
    #: 0 for a receipt as it arrives; n for its n-th look-up of ids not found before.
    attempt: int = 0


class ProcessReceipt:
    """Ticks on what the account sent: delivered, read, played.

    - Status only moves forward: a late "delivered" after "read" changes nothing, and each
      real change publishes one ``message.status``.
    - The account's own "read" (the chat was read on the phone or another device) marks the
      conversation read here too: unread drops to 0, ``conversation.updated``.
    - A receipt can overtake the send it acknowledges (WhatsApp answers before the outbox has
      stored the message's WhatsApp id): ids not found are looked up again after
      ``retry_delays`` seconds, then dropped.
    - Others' receipts of inbound messages, and server errors, change nothing.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        retry_delays: tuple[float, ...] = (1.0, 3.0, 10.0),
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.retry_delays = retry_delays
        self._retries: set[asyncio.Task[None]] = set()

    async def __call__(self, command: ReceiptCommand) -> list[Message]:
        receipt = command.receipt
        status = _RECEIPT_STATUS.get(receipt.type)
        if status is None:
            log.info(
                "session %s: %s receipt for %s", command.session_id, receipt.type, receipt.wa_ids
            )
            return []
        changed, unknown, own = await again_if_raced(
            lambda: self._apply(command, status),
            session_id=command.session_id,
            what="a receipt",
        )
        if unknown and not own and command.attempt < len(self.retry_delays):
            later = replace(receipt, wa_ids=tuple(unknown))
            self._retry_later(
                ReceiptCommand(
                    session_id=command.session_id, receipt=later, attempt=command.attempt + 1
                ),
                self.retry_delays[command.attempt],
            )
        return changed

    async def _apply(
        self, command: ReceiptCommand, status: MessageStatus
    ) -> tuple[list[Message], list[str], bool]:
        """One unit of work: the messages changed, the ids not found, and whether the
        receipt is the account's own."""
        receipt = command.receipt
        now = self.clock.now()
        changed: list[Message] = []
        unknown: list[str] = []
        async with self.uow() as uow:
            await uow.begin_write()
            session = await uow.sessions.get(command.session_id)
            if session is None:
                raise SessionNotFound(session_id=command.session_id)
            own = receipt.sender is not None and receipt.sender in (session.jid, session.lid)
            if own and status is MessageStatus.READ and command.attempt == 0:
                await self._read_on_phone(uow, session.id, receipt.chat, now)
            for wa_id in sorted(set(receipt.wa_ids)):  # on PostgreSQL each is locked: in order
                message = await uow.messages.get_by_wa_id(command.session_id, wa_id)
                if message is None:
                    unknown.append(wa_id)
                    continue
                if message.is_inbound:
                    continue
                if message.advance_status(status):
                    await uow.messages.save(message)
                    uow.events.add(MessageStatusChanged.of(message, now))
                    changed.append(message)
            await uow.commit()
        return changed, unknown, own

    def _retry_later(self, command: ReceiptCommand, delay: float) -> None:
        async def retry() -> None:
            await self.clock.sleep(delay)
            try:
                await self(command)
            except Exception:
                log.warning("session %s: receipt retry failed", command.session_id, exc_info=True)

        task = asyncio.create_task(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    @staticmethod
    async def _read_on_phone(uow: UnitOfWork, session_id: str, chat: Jid, now: datetime) -> None:
        conversation = await _conversation_with(uow, session_id, chat)
        if conversation is not None and conversation.mark_read(now):
            await uow.conversations.save(conversation)
            uow.events.add(ConversationUpdated.of(conversation, now))

    async def handle(self, session_id: str, event: Receipt) -> list[Message]:
        return await self(ReceiptCommand(session_id=session_id, receipt=event))


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceCommand:
    session_id: str
    presence: Presence


class ProcessPresence:
    """A contact is typing, recording or stopped: ``chat.typing`` with the conversation when
    there is one (a chat we never talked with has none; nothing is created for typing)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def __call__(self, command: PresenceCommand) -> None:
        presence = command.presence
        async with self.uow() as uow:
            session = await uow.sessions.get(command.session_id)
            if session is None:
                raise SessionNotFound(session_id=command.session_id)
            conversation = await _conversation_with(uow, session.id, presence.chat)
            uow.events.add(
                TypingChanged(
                    organization_id=session.organization_id,
                    session_id=session.id,
                    occurred_at=self.clock.now(),
                    conversation_id=conversation.id if conversation else None,
                    chat=str(conversation.chat if conversation else presence.chat),
                    sender=str(presence.sender) if presence.sender else None,
                    state=str(presence.state),
                )
            )
            await uow.commit()

    async def handle(self, session_id: str, event: Presence) -> None:
        await self(PresenceCommand(session_id=session_id, presence=event))
