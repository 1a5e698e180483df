"""What WhatsApp hands over in bulk: message history and the address book."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from whatsgate.domain.errors import ConversationNotFound, InvalidInput, SessionNotFound
from whatsgate.domain.events import ContactsSynced, HistorySyncProgress
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session
from whatsgate.ports.clock import Clock
from whatsgate.ports.engine import ContactInfo, ContactsBatch, HistoryBatch, IncomingMessage
from whatsgate.ports.repositories import UnitOfWorkFactory
from whatsgate.usecases._races import again_if_raced
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.ingest import MessageIngestion

log = logging.getLogger("whatsgate.history")


async def _merge_contacts(
    ingestion: MessageIngestion,
    session: Session,
    contacts: Sequence[ContactInfo],
    lid_mappings: Sequence[tuple[Jid, Jid]] = (),
) -> int:
    """Merge what the engine knows of contacts; returns how many it named."""
    await ingestion.prefetch_contacts(
        session.id,
        [j for info in contacts for j in (info.jid, info.lid) if j is not None]
        + [j for pair in lid_mappings for j in pair],
    )
    for info in contacts:
        await ingestion.contact(
            session,
            info.jid,
            alt=info.lid,
            name=info.name,
            push_name=info.push_name,
            business_name=info.business_name,
        )
    for lid, phone in lid_mappings:
        await ingestion.contact(session, phone, alt=lid)
    return len(contacts)


# -- history --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HistorySettings:
    #: Messages older than this many days are not imported.
    window_days: int = 30
    #: Messages per unit of work.
    chunk_size: int = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportHistoryCommand:
    session_id: str
    batch: HistoryBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportHistoryResult:
    #: Messages newly stored.
    stored: int
    #: Messages of the batch handled so far (stored, already there, or too old): the batch
    #: size once it is complete.
    processed: int
    total: int
    #: Units of work committed by this call.
    transactions: int


def progress_key(session_id: str, batch: HistoryBatch) -> str:
    """The event-log cursor that keeps how far a batch got: ``history:<session>:<digest>``,
    the digest taken over the batch's WhatsApp ids."""
    digest = hashlib.sha256("\n".join(m.wa_id for m in batch.messages).encode()).hexdigest()
    return f"history:{session_id}:{digest[:24]}"


class ImportHistory:
    """Import a batch of history WhatsApp pushed (after pairing, or on demand).

    - Chunks of at most ``chunk_size`` (500) messages, each in one unit of work: a failure
      leaves none of that chunk stored.
    - Messages older than the window (30 days by default) are skipped.
    - Idempotent: a message already stored is not stored again, nor counted; history never
      counts unread nor reopens a conversation, it only moves previews forward.
    - Contacts and LID ↔ phone pairs of the batch are merged with the first chunk.
    - ``history.progress`` after each chunk: processed and total of the batch, ``done`` after
      the last chunk of the last batch; ``conversation.updated`` for each conversation a chunk
      touched, but no ``message.new`` (weeks of history would flood the clients).
    - Resumable: how far the batch got is kept in the event log's cursors (``progress_key``),
      written by the same commit as each chunk; the same batch handed again after a crash
      resumes after its last committed chunk.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, settings: HistorySettings | None = None
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.settings = settings or HistorySettings()
        if self.settings.chunk_size < 1:
            raise InvalidInput("chunk_size is at least 1.")

    async def __call__(self, command: ImportHistoryCommand) -> ImportHistoryResult:
        sid, batch = command.session_id, command.batch
        messages = batch.messages
        total = len(messages)
        key = progress_key(sid, batch)
        async with self.uow() as uow:
            if await uow.sessions.get(sid) is None:
                raise SessionNotFound(session_id=sid)
            start = min(await uow.events.get_cursor(key), total)
        if start and start < total:
            log.info("session %s: resuming a history batch at %d of %d", sid, start, total)
        cutoff = self.clock.now() - timedelta(days=self.settings.window_days)
        size = self.settings.chunk_size
        bounds = [(i, min(i + size, total)) for i in range(start, total, size)]
        if not bounds and start == 0:
            bounds = [(0, 0)]  # contacts only: still merged and reported
        stored = transactions = 0
        processed = start
        for index, (low, high) in enumerate(bounds):
            recent = [m for m in messages[low:high] if m.timestamp >= cutoff]
            inserted = await again_if_raced(
                functools.partial(self._chunk, sid, batch, key, index == 0, recent, high),
                session_id=sid,
                what="a history chunk",
            )
            processed = high
            stored += inserted
            transactions += 1
        return ImportHistoryResult(
            stored=stored, processed=processed, total=total, transactions=transactions
        )

    async def _chunk(
        self,
        sid: str,
        batch: HistoryBatch,
        key: str,
        first: bool,
        recent: list[IncomingMessage],
        processed: int,
    ) -> int:
        """Store one chunk and its progress in one unit of work; the messages stored."""
        now = self.clock.now()
        async with self.uow() as uow:
            # It saves the conversations and contacts it reads: an assignment, or a live
            # message counted unread, landing in between would be lost.
            await uow.begin_write()
            ingestion = MessageIngestion(uow, now, live=False)
            session = await ingestion.session(sid)
            if first:
                await _merge_contacts(ingestion, session, batch.contacts, batch.lid_mappings)
            await ingestion.prefetch(sid, recent)
            for message in recent:
                await ingestion.apply(sid, message)
            inserted = await ingestion.flush()
            await uow.events.set_cursor(key, processed)
            uow.events.add(
                HistorySyncProgress(
                    organization_id=session.organization_id,
                    session_id=sid,
                    occurred_at=now,
                    processed=processed,
                    total=len(batch.messages),
                    done=batch.is_last and processed >= len(batch.messages),
                )
            )
            await uow.commit()
        return len(inserted)

    async def handle(self, session_id: str, event: HistoryBatch) -> ImportHistoryResult:
        return await self(ImportHistoryCommand(session_id=session_id, batch=event))


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHistorySyncCommand:
    session_id: str
    #: The conversation whose older messages to fetch; ``None`` asks for recent history.
    conversation_id: str | None = None
    count: int = 50


class RequestHistorySync:
    """Ask WhatsApp for more history on demand; it arrives later as history batches
    (ImportHistory).

    - Needs the session's live connection (``session_not_running``).
    - ``count`` is 1 to 500 messages.
    """

    def __init__(self, uow: UnitOfWorkFactory, connections: SessionConnections) -> None:
        self.uow = uow
        self.connections = connections

    async def __call__(self, command: RequestHistorySyncCommand) -> None:
        if not 1 <= command.count <= 500:
            raise InvalidInput("count is between 1 and 500.", field="count")
        chat: Jid | None = None
        async with self.uow() as uow:
            if await uow.sessions.get(command.session_id) is None:
                raise SessionNotFound(session_id=command.session_id)
            if command.conversation_id is not None:
                conversation = await uow.conversations.get(command.conversation_id)
                if conversation is None or conversation.session_id != command.session_id:
                    raise ConversationNotFound(conversation_id=command.conversation_id)
                chat = conversation.chat
        connection = self.connections.get(command.session_id)
        await connection.request_history(chat, command.count)


# -- contacts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncContactsCommand:
    session_id: str
    #: The contacts to merge; ``None`` asks the session's live connection for them.
    contacts: tuple[ContactInfo, ...] | None = None


class SyncContacts:
    """Merge the account's contacts into the session's.

    - Merged by phone JID or LID, never duplicated; names and LIDs learnt, nothing known erased.
    - One unit of work (run again if it lost a race to create a contact: ``again_if_raced``);
      publishes ``contacts.synced`` with the number of contacts received.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, connections: SessionConnections, clock: Clock
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.clock = clock

    async def __call__(self, command: SyncContactsCommand) -> int:
        contacts = command.contacts
        if contacts is None:
            contacts = tuple(await self.connections.get(command.session_id).contacts())
        return await again_if_raced(
            functools.partial(self._merge, command.session_id, contacts),
            session_id=command.session_id,
            what="a contact sync",
        )

    async def _merge(self, session_id: str, contacts: Sequence[ContactInfo]) -> int:
        now = self.clock.now()
        async with self.uow() as uow:
            await uow.begin_write()  # it saves the contacts it reads (see ``_chunk``)
            ingestion = MessageIngestion(uow, now, live=False)
            session = await ingestion.session(session_id)
            count = await _merge_contacts(ingestion, session, contacts)
            await ingestion.flush()
            uow.events.add(
                ContactsSynced(
                    organization_id=session.organization_id,
                    session_id=session.id,
                    occurred_at=now,
                    count=count,
                )
            )
            await uow.commit()
        return count

    async def handle(self, session_id: str, event: ContactsBatch) -> int:
        return await self(SyncContactsCommand(session_id=session_id, contacts=event.contacts))
