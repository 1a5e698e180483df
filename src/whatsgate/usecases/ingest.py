"""Ingesting what WhatsApp delivers: ProcessIncomingMessage, with group commit.

``MessageIngestion`` applies engine messages to one unit of work; live ingest and history import
share it, so a message means the same thing whichever way it arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from whatsgate.domain.conversation import Contact, Conversation
from whatsgate.domain.errors import SessionNotFound
from whatsgate.domain.events import ConversationUpdated, MessageReceived, MessageUpdated
from whatsgate.domain.jid import BROADCAST_SERVER, Jid
from whatsgate.domain.message import Direction, Message, MessageKind, MessageStatus
from whatsgate.domain.session import Session
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import IncomingMessage
from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory
from whatsgate.usecases._chats import ChatLookup, contact_for, conversation_for
from whatsgate.usecases._groups import Groups, fail_waiter
from whatsgate.usecases._races import again_if_raced

log = logging.getLogger("whatsgate.ingest")


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestResult:
    #: The message stored, or the one an edit, revoke or reaction changed; None when the
    #: message was already stored (a duplicate) or was ignored.
    message: Message | None
    #: True when this call stored a new message.
    created: bool


_IGNORED = IngestResult(message=None, created=False)

#: What ``MessageIngestion.contact`` was asked: session, jid, alt and the names.
_ContactCall = tuple[str, Jid, Jid | None, str | None, str | None, str | None]


class MessageIngestion:
    """Applies engine messages to one unit of work, then writes them with ``flush``.

    Reads are batched (``prefetch``: one look-up each of the known WhatsApp ids, the contacts
    and the conversations of all the messages), entities touched by several messages are
    loaded once, and every write happens once in ``flush``.
    """

    def __init__(self, uow: UnitOfWork, now: datetime, *, live: bool) -> None:
        self.uow = uow
        self.now = now
        self.live = live
        self._sessions: dict[str, Session] = {}
        self._known: dict[str, set[str]] = {}
        self._prefetched: set[str] = set()
        self._contacts: dict[tuple[str, Jid], Contact] = {}
        self._dirty_contacts: dict[str, Contact] = {}
        self._conversations: dict[tuple[str, Jid], Conversation] = {}
        self._conversations_by_id: dict[str, Conversation] = {}
        self._dirty_conversations: dict[str, Conversation] = {}
        self._new: list[Message] = []
        self._new_by_wa: dict[tuple[str, str], Message] = {}
        self._changed: dict[str, Message] = {}
        self._lookup = ChatLookup(uow)
        self._last_contact: tuple[_ContactCall, Contact] | None = None

    async def prefetch(self, session_id: str, messages: Sequence[IncomingMessage]) -> None:
        """Learn in one query which of these messages are stored already, and load the
        contacts and conversations they name in one query each."""
        self._prefetched.add(session_id)
        known = self._known.setdefault(session_id, set())
        known |= await self.uow.messages.existing_wa_ids(session_id, [m.wa_id for m in messages])
        await self._lookup.load(
            session_id,
            {
                jid
                for m in messages
                if m.wa_id not in known and not (m.is_edit or m.is_revoke)
                for jid in (m.chat, m.chat_alt, m.sender, m.sender_alt)
                if jid is not None
            },
        )

    async def prefetch_sessions(self, groups: Mapping[str, Sequence[IncomingMessage]]) -> None:
        """``prefetch`` for the messages of several sessions at once (a group of live
        messages): the sessions, the known WhatsApp ids, the contacts and the conversations,
        one query each for all of them."""
        session_ids = sorted(groups)
        for session in await self.uow.sessions.get_many(session_ids):
            self._sessions.setdefault(session.id, session)
        self._prefetched.update(session_ids)
        stored = await self.uow.messages.existing_wa_ids_of_sessions(
            session_ids, [m.wa_id for messages in groups.values() for m in messages]
        )
        for session_id in session_ids:
            self._known.setdefault(session_id, set())
        for session_id, wa_id in stored:
            self._known[session_id].add(wa_id)
        await self._lookup.load_sessions(
            {
                session_id: {
                    jid
                    for m in messages
                    if m.wa_id not in self._known[session_id] and not (m.is_edit or m.is_revoke)
                    for jid in (m.chat, m.chat_alt, m.sender, m.sender_alt)
                    if jid is not None
                }
                for session_id, messages in groups.items()
            }
        )

    async def prefetch_contacts(self, session_id: str, jids: Iterable[Jid]) -> None:
        """Load the contacts known by these JIDs (and their conversations) in one query each."""
        await self._lookup.load(session_id, jids)

    async def session(self, session_id: str) -> Session:
        found = self._sessions.get(session_id)
        if found is None:
            found = await self.uow.sessions.get(session_id)
            if found is None:
                raise SessionNotFound(session_id=session_id)
            self._sessions[session_id] = found
        return found

    # -- contacts and conversations -------------------------------------------------------

    async def contact(
        self,
        session: Session,
        jid: Jid,
        *,
        alt: Jid | None = None,
        push_name: str | None = None,
        name: str | None = None,
        business_name: str | None = None,
    ) -> Contact:
        """The contact known by ``jid`` or ``alt``, created or merged with what is new."""
        # The messages of a chat come one after the other (history always, live often), each
        # saying the same of its contact: merging it again would change nothing.
        call = (session.id, jid, alt, push_name, name, business_name)
        if self._last_contact is not None and self._last_contact[0] == call:
            return self._last_contact[1]
        cached = next(
            (
                c
                for key in (jid, alt)
                if key is not None
                for c in [self._contacts.get((session.id, key))]
                if c is not None
            ),
            None,
        )
        if cached is not None:
            contact = cached
            phone = next((j for j in (jid, alt) if j is not None and j.is_user), None)
            lid = next((j for j in (jid, alt) if j is not None and j.is_lid), None)
            changed = contact.merge(
                self.now,
                name=name,
                push_name=push_name,
                business_name=business_name,
                phone_jid=phone,
                lid=lid,
            )
        else:
            contact, changed = await contact_for(
                self.uow,
                session,
                jid,
                self.now,
                alt=alt,
                push_name=push_name,
                name=name,
                lookup=self._lookup,
            )
            if business_name:
                changed = contact.merge(self.now, business_name=business_name) or changed
        for key in (jid, alt, contact.jid, contact.lid):
            if key is not None:
                self._contacts[(session.id, key)] = contact
        if changed:
            self._dirty_contacts[contact.id] = contact
        self._last_contact = (call, contact)
        return contact

    async def conversation(
        self, session: Session, chat: Jid, *, name: str | None = None, lid: Jid | None = None
    ) -> Conversation:
        """The conversation with ``chat`` (also found by the contact's ``lid``, and then
        readdressed to the phone number), created ``pending`` when new."""
        cached = self._conversations.get((session.id, chat))
        if cached is not None:
            return cached
        conversation, created = await conversation_for(
            self.uow, session, chat, self.now, name=name, lookup=self._lookup
        )
        if created and lid is not None:
            # Known so far by the LID only: that conversation moves to the phone number.
            by_lid = self._conversations.get((session.id, lid))
            if by_lid is None:
                by_lid = await self._lookup.conversation(session.id, lid)
            if by_lid is not None:
                conversation, created = by_lid, False
                self._conversations.pop((session.id, lid), None)
                conversation.readdress(chat, self.now)
                self._dirty_conversations[conversation.id] = conversation
        if created:
            self._dirty_conversations[conversation.id] = conversation
        return self._remember(conversation)

    async def conversation_by_id(self, conversation_id: str) -> Conversation | None:
        found = self._conversations_by_id.get(conversation_id)
        if found is None:
            found = await self.uow.conversations.get(conversation_id)
            if found is not None:
                self._remember(found)
        return found

    def _remember(self, conversation: Conversation) -> Conversation:
        self._conversations[(conversation.session_id, conversation.chat)] = conversation
        self._conversations_by_id[conversation.id] = conversation
        return conversation

    # -- messages -------------------------------------------------------------------------

    async def apply(self, session_id: str, incoming: IncomingMessage) -> IngestResult:
        """Stage one engine message; nothing is written before ``flush``."""
        if incoming.chat.server == BROADCAST_SERVER:
            log.debug("session %s: status/broadcast message %s ignored", session_id, incoming.wa_id)
            return _IGNORED
        session = self._sessions.get(session_id)
        if session is None:
            session = await self.session(session_id)
        if incoming.is_edit or incoming.is_revoke:
            return await self._change_target(session, incoming)
        known = self._known.get(session_id)
        if known is None:
            known = self._known[session_id] = set()
        if incoming.wa_id in known:
            return _IGNORED
        if session_id not in self._prefetched and await self.uow.messages.existing_wa_ids(
            session_id, [incoming.wa_id]
        ):
            return _IGNORED
        known.add(incoming.wa_id)

        conversation = await self._conversation_of(session, incoming)
        message = self._message(session, conversation, incoming)
        if message.kind is MessageKind.REACTION and incoming.target_wa_id and message.sender:
            target = await self._target(session_id, incoming.target_wa_id)
            if target is not None and target.apply_reaction(message.sender, incoming.text or ""):
                self._mark_changed(target)
        if conversation.register_message(message, self.now, live=self.live):
            self._dirty_conversations[conversation.id] = conversation
        self._new.append(message)
        self._new_by_wa[(session_id, incoming.wa_id)] = message
        return IngestResult(message=message, created=True)

    async def _conversation_of(self, session: Session, incoming: IncomingMessage) -> Conversation:
        chat = incoming.chat
        if chat.is_group or chat.server not in (Jid.USER_SERVER, Jid.LID_SERVER):
            if not incoming.from_me and incoming.sender is not None:
                await self.contact(
                    session, incoming.sender, alt=incoming.sender_alt, push_name=incoming.push_name
                )
            return await self.conversation(session, chat, name=incoming.chat_name)
        # A direct chat: the contact is the other party, whoever wrote.
        contact = await self.contact(
            session,
            chat,
            alt=incoming.chat_alt or (None if incoming.from_me else incoming.sender_alt),
            push_name=None if incoming.from_me else incoming.push_name,
        )
        return await self.conversation(
            session, contact.jid, name=incoming.chat_name, lid=contact.lid
        )

    def _message(
        self, session: Session, conversation: Conversation, incoming: IncomingMessage
    ) -> Message:
        from_me, kind, sender = incoming.from_me, incoming.kind, incoming.sender
        if sender is None:
            sender = (
                session.jid if from_me else (None if conversation.is_group else conversation.chat)
            )
        unsupported = incoming.unsupported_type
        if kind is MessageKind.UNSUPPORTED and not unsupported:
            unsupported = "unknown"
        return Message(
            organization_id=session.organization_id,
            session_id=session.id,
            conversation_id=conversation.id,
            wa_id=incoming.wa_id,
            chat=conversation.chat,
            sender=sender,
            sender_alt=incoming.sender_alt,
            push_name=None if from_me else incoming.push_name,
            direction=Direction.OUT if from_me else Direction.IN,
            kind=kind,
            text=incoming.text,
            media=incoming.media,
            location=incoming.location,
            contact=incoming.contact,
            poll=incoming.poll,
            quoted_wa_id=incoming.quoted_wa_id,
            target_wa_id=incoming.target_wa_id,
            unsupported_type=unsupported,
            timestamp=incoming.timestamp,
            status=MessageStatus.SENT if from_me else MessageStatus.RECEIVED,
            created_at=self.now,
        )

    async def _target(self, session_id: str, wa_id: str) -> Message | None:
        found = self._new_by_wa.get((session_id, wa_id))
        if found is not None:
            return found
        found = next(
            (m for m in self._changed.values() if m.session_id == session_id and m.wa_id == wa_id),
            None,
        )
        if found is not None:
            return found
        return await self.uow.messages.get_by_wa_id(session_id, wa_id)

    async def _change_target(self, session: Session, incoming: IncomingMessage) -> IngestResult:
        target = (
            await self._target(session.id, incoming.target_wa_id) if incoming.target_wa_id else None
        )
        if target is None:
            log.info(
                "session %s: %s of unknown message %s ignored",
                session.id,
                "revoke" if incoming.is_revoke else "edit",
                incoming.target_wa_id,
            )
            return _IGNORED
        if incoming.is_revoke:
            changed = target.revoke(incoming.timestamp)
        else:
            changed = target.apply_edit(incoming.text or "", incoming.timestamp)
        if not changed:
            return IngestResult(message=target, created=False)
        self._mark_changed(target)
        conversation = await self.conversation_by_id(target.conversation_id)
        if conversation is not None:
            conversation.refresh_preview(target, self.now)
            self._dirty_conversations[conversation.id] = conversation
        return IngestResult(message=target, created=False)

    def _mark_changed(self, message: Message) -> None:
        if (message.session_id, message.wa_id or "") not in self._new_by_wa:
            self._changed[message.id] = message

    # -- writing --------------------------------------------------------------------------

    async def flush(self) -> list[Message]:
        """Write everything staged and stage its events: ``message.new`` for each message
        stored live (history does not flood the clients with weeks of messages),
        ``message.updated`` for each stored message changed, ``conversation.updated`` for each
        conversation touched. Returns the messages stored."""
        uow = self.uow
        if self._dirty_contacts:
            await uow.contacts.save_many(list(self._dirty_contacts.values()))
        if self._dirty_conversations:
            await uow.conversations.save_many(list(self._dirty_conversations.values()))
        inserted = await uow.messages.add_new(self._new) if self._new else []
        for message in self._changed.values():
            await uow.messages.save(message)
        for message in inserted if self.live else ():
            conversation = self._conversations_by_id.get(message.conversation_id)
            assignee = conversation.assignee_id if conversation else None
            uow.events.add(MessageReceived.of(message, self.now, assignee))
        for message in self._changed.values():
            conversation = self._conversations_by_id.get(message.conversation_id)
            assignee = conversation.assignee_id if conversation else None
            uow.events.add(MessageUpdated.of(message, self.now, assignee))
        for conversation in self._dirty_conversations.values():
            uow.events.add(ConversationUpdated.of(conversation, self.now))
        return inserted


# -- live ingest ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    #: Messages arriving within this many seconds of the first are committed together. 0:
    #: a group is what arrived by the time the flusher runs, and under load what arrived
    #: while the group before it committed (bench/ingest_socketio.py: at 500 msgs/s a 2 ms
    #: window doubled the median latency once a group cost about a millisecond).
    group_window: float = 0.0
    #: At most this many messages per unit of work.
    max_group: int = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingMessageCommand:
    session_id: str
    message: IncomingMessage


@dataclass(eq=False)
class _Waiting:
    command: IncomingMessageCommand
    future: asyncio.Future[IngestResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ProcessIncomingMessage:
    """Idempotent ingest of one engine message (live).

    - Every kind is stored (text, media with its metadata, location, contact card, poll,
      reaction, and ``unsupported`` with WhatsApp's own type name); replies keep the quoted id.
    - Stored once per session and WhatsApp id: the same message twice is stored and counted
      unread once.
    - Direct chats: the conversation is the other party's, known by phone number when WhatsApp
      gave it (a chat first seen by its LID moves to the number once known). Groups: the
      conversation is the group; the sender is kept apart and upserted as a contact.
    - The contact is upserted (push name, LID and phone when known); a new conversation is
      ``pending``; last message preview and time follow the newest; inbound counts unread
      (and reopens a closed conversation); what the account sent from the phone is outbound.
    - A reaction is stored and applied to its target; an edit or revoke changes its target
      (``message.updated``) and is not a message of its own; one of an unknown message is
      ignored. Status updates (``status@broadcast``) are not chats and are ignored.
    - Publishes ``message.new`` and ``conversation.updated``, stored with the message.
    - Group commit: messages arriving together (within ``group_window``, none by default)
      share one unit of work, and those arriving while it commits share the next; each call
      returns only once its message is committed. If a shared unit of work fails, its
      messages are retried one by one, so one bad message fails alone; one that lost a race
      (``again_if_raced``) runs again.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, settings: IngestSettings | None = None
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.settings = settings or IngestSettings()
        self._groups: Groups[_Waiting] = Groups(
            self._commit,
            max_group=self.settings.max_group,
            name="whatsgate:ingest",
            before=lambda: self.clock.sleep(self.settings.group_window),
        )

    async def __call__(self, command: IncomingMessageCommand) -> IngestResult:
        waiting = _Waiting(command)
        self._groups.submit(waiting)
        return await waiting.future

    async def handle(self, session_id: str, event: IncomingMessage) -> IngestResult:
        """The engine event handler (see ``EngineEventRouter.register``)."""
        return await self(IncomingMessageCommand(session_id=session_id, message=event))

    async def _commit(self, batch: list[_Waiting]) -> None:
        try:
            if len(batch) == 1:
                # Alone, it runs again where it lost a race (``again_if_raced``) rather than
                # fail: a conversation a send created meanwhile, a deadlock on PostgreSQL.
                command = batch[0].command
                results = await again_if_raced(
                    lambda: self._apply([command]), session_id=command.session_id, what="a message"
                )
            else:
                results = await self._apply([w.command for w in batch])
        except Exception as exc:
            if len(batch) == 1:
                log.exception("session %s: message not ingested", batch[0].command.session_id)
                fail_waiter(batch[0].future, exc)
                return
            for waiting in batch:
                await self._commit([waiting])
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(result)

    async def _apply(self, commands: list[IncomingMessageCommand]) -> list[IngestResult]:
        async with self.uow() as uow:
            await uow.begin_write()  # every group writes: one turn and one snapshot for it all
            ingestion = MessageIngestion(uow, self.clock.now(), live=True)
            by_session: dict[str, list[IncomingMessage]] = {}
            for command in commands:
                by_session.setdefault(command.session_id, []).append(command.message)
            await ingestion.prefetch_sessions(by_session)
            results = [await ingestion.apply(c.session_id, c.message) for c in commands]
            await ingestion.flush()
            await uow.commit()
        return results
