from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from whatsgate.domain.auth import Principal
from whatsgate.domain.conversation import ConversationStatus
from whatsgate.domain.errors import (
    ContactNotFound,
    ConversationNotFound,
    InvalidCursor,
    InvalidInput,
    PermissionDenied,
    SessionNotFound,
    SessionNotRunning,
    UserNotFound,
    WriteConflict,
)
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Direction, Message, MessageKind, MessageStatus
from whatsgate.domain.organization import Role, User
from whatsgate.domain.session import Session
from whatsgate.ports.engine import Presence, Receipt, ReceiptType, TypingState
from whatsgate.testing import MemoryUnitOfWork
from whatsgate.usecases.inbox import (
    UNSET,
    AssignConversationCommand,
    GetMessages,
    GetMessagesQuery,
    ListConversations,
    ListConversationsQuery,
    MarkReadCommand,
    PresenceCommand,
    ProcessReceipt,
    ReceiptCommand,
    SendTypingCommand,
    SetConversationStatusCommand,
    UpdateContactCommand,
    UpdateConversationCommand,
)
from whatsgate.usecases.sessions import SessionCommand

from .harness import ALICE, ALICE_LID, BOB, GROUP, World, counting, failing_commits, incoming

S = MessageStatus


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def session(world: World) -> Session:
    return await world.new_session()


async def sent_message(world: World, session: Session, wa_id: str, chat: str = ALICE) -> Message:
    """An outbound message as the sending side stores it once WhatsApp accepted it."""
    conversation = await world.conversation(session.id, chat)
    message = Message(
        organization_id=session.organization_id,
        session_id=session.id,
        conversation_id=conversation.id,
        wa_id=wa_id,
        chat=Jid.parse(chat),
        sender=None,
        direction=Direction.OUT,
        kind=MessageKind.TEXT,
        text="sent by an attendant",
        timestamp=world.clock.now(),
        status=S.SENT,
        created_at=world.clock.now(),
    )
    async with world.uow() as uow:
        await uow.messages.save(message)
        await uow.commit()
    return message


def receipt(kind: ReceiptType, *wa_ids: str, chat: str = ALICE) -> Receipt:
    return Receipt(
        chat=Jid.parse(chat),
        sender=Jid.parse(chat),
        wa_ids=wa_ids,
        type=kind,
        timestamp=datetime(2026, 1, 1, 12, tzinfo=UTC),
    )


async def agent(world: World, organization_id: str, name: str = "Bia") -> User:
    user = User(
        organization_id=organization_id, name=name, role=Role.AGENT, created_at=world.clock.now()
    )
    async with world.uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    return user


# -- receipts and presence ------------------------------------------------------------------


async def test_receipts_out_of_order_end_in_read(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("IN1"))
    await sent_message(world, session, "OUT1")
    await world.receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.READ, "OUT1"))
    )
    late = await world.receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.DELIVERED, "OUT1"))
    )
    assert late == []
    assert (await world.message_by_wa_id(session.id, "OUT1")).status is S.READ
    assert [e.data["status"] for e in world.events("message.status")] == ["read"]


async def test_a_receipt_whose_unit_of_work_lost_a_race_runs_again(
    world: World, session: Session
) -> None:
    """The database ended its unit of work for another's sake (``WriteConflict``: a deadlock
    on PostgreSQL), which wrote nothing: the receipt is applied on the next run."""
    await world.receive(session.id, incoming("IN1"))
    await sent_message(world, session, "OUT1")
    failures = [WriteConflict("deadlock detected")]

    receipts = ProcessReceipt(failing_commits(world.store, failures), world.clock)
    changed = await receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.READ, "OUT1"))
    )
    assert ([m.wa_id for m in changed], failures) == (["OUT1"], [])
    assert (await world.message_by_wa_id(session.id, "OUT1")).status is S.READ


async def test_a_receipt_that_overtakes_its_send_is_applied_once_the_send_is_stored(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("IN1"))
    early = await world.receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.DELIVERED, "OUT1"))
    )
    assert early == []
    await sent_message(world, session, "OUT1")  # the outbox stores the WhatsApp id just after
    await world.clock.advance(1)
    assert (await world.message_by_wa_id(session.id, "OUT1")).status is S.DELIVERED
    assert [e.data["status"] for e in world.events("message.status")] == ["delivered"]


async def test_receipts_of_messages_never_stored_are_dropped_after_a_few_tries(
    world: World, session: Session
) -> None:
    await world.receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.READ, "GHOST"))
    )
    await world.clock.advance(60)
    assert world.clock.sleepers == 0  # no retry left pending
    assert world.events("message.status") == []


async def test_receipts_move_ticks_forward_one_event_per_change(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("IN1"))
    await sent_message(world, session, "OUT1")
    await sent_message(world, session, "OUT2")
    for kind in (
        ReceiptType.DELIVERED,
        ReceiptType.DELIVERED,
        ReceiptType.READ,
        ReceiptType.PLAYED,
    ):
        await world.receipts(
            ReceiptCommand(session_id=session.id, receipt=receipt(kind, "OUT1", "OUT2", "GONE"))
        )
    assert [(await world.message_by_wa_id(session.id, w)).status for w in ("OUT1", "OUT2")] == [
        S.PLAYED
    ] * 2
    assert [e.data["status"] for e in world.events("message.status")] == [
        "delivered",
        "delivered",
        "read",
        "read",
        "played",
        "played",
    ]
    # A receipt for an inbound message (our own read mark seen from another device) and a
    # server error change nothing.
    await world.receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.READ, "IN1"))
    )
    await world.receipts(
        ReceiptCommand(session_id=session.id, receipt=receipt(ReceiptType.SERVER_ERROR, "OUT1"))
    )
    assert (await world.message_by_wa_id(session.id, "IN1")).status is S.RECEIVED
    assert len(world.events("message.status")) == 6


async def test_reading_the_chat_on_the_phone_marks_it_read_here(world: World) -> None:
    session = await world.connected_session()
    assert session.jid is not None
    await world.receive(session.id, incoming("IN1", chat=ALICE_LID, chat_alt=Jid.parse(ALICE)))
    await world.receive(session.id, incoming("IN2", chat=ALICE_LID))
    own = Receipt(
        chat=Jid.parse(ALICE_LID),
        sender=session.jid,
        wa_ids=("IN1", "IN2"),
        type=ReceiptType.READ,
        timestamp=world.clock.now(),
    )
    await world.fake.emit(session.id, own)
    conversation = await world.conversation(session.id, ALICE)
    assert conversation.unread_count == 0
    assert world.events("conversation.updated")[-1].data["unread_count"] == 0
    # The contact's own read receipt of an inbound message does not.
    await world.receive(session.id, incoming("IN3"))
    await world.fake.emit(session.id, receipt(ReceiptType.READ, "IN3"))
    assert (await world.conversation(session.id, ALICE)).unread_count == 1


async def test_receipts_from_the_engine_are_applied(world: World) -> None:
    session = await world.connected_session()
    await world.receive(session.id, incoming("IN1"))
    await sent_message(world, session, "OUT1")
    await world.fake.emit(session.id, receipt(ReceiptType.DELIVERED, "OUT1"))
    assert (await world.message_by_wa_id(session.id, "OUT1")).status is S.DELIVERED


async def test_a_contact_typing_is_published_with_its_conversation(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    await world.presence(
        PresenceCommand(
            session_id=session.id,
            presence=Presence(
                chat=Jid.parse(ALICE), sender=Jid.parse(ALICE), state=TypingState.COMPOSING
            ),
        )
    )
    await world.presence(
        PresenceCommand(
            session_id=session.id,
            presence=Presence(chat=Jid.parse(BOB), sender=None, state=TypingState.PAUSED),
        )
    )
    assert [e.data for e in world.events("chat.typing")] == [
        {"conversation_id": conversation.id, "chat": ALICE, "sender": ALICE, "state": "composing"},
        {"conversation_id": None, "chat": BOB, "sender": None, "state": "paused"},
    ]
    assert len(world.store.conversations) == 1  # typing creates nothing


async def test_send_typing_goes_through_the_live_connection(world: World) -> None:
    session = await world.connected_session()
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    await world.send_typing(
        SendTypingCommand(conversation_id=conversation.id, state=TypingState.COMPOSING)
    )
    assert world.fake.connection(session.id).typing == [(Jid.parse(ALICE), TypingState.COMPOSING)]
    await world.stop(SessionCommand(session_id=session.id))
    with pytest.raises(SessionNotRunning):
        await world.send_typing(
            SendTypingCommand(conversation_id=conversation.id, state=TypingState.PAUSED)
        )


# -- reading --------------------------------------------------------------------------------


async def test_mark_read_zeroes_unread_and_sends_read_receipts(world: World) -> None:
    session = await world.connected_session()
    await world.receive(session.id, incoming("M1"))
    await world.mark_read(
        MarkReadCommand(conversation_id=(await world.conversation(session.id, ALICE)).id)
    )
    for wa_id in ("M2", "M3"):
        await world.receive(session.id, incoming(wa_id))
    conversation = await world.conversation(session.id, ALICE)
    assert conversation.unread_count == 2
    result = await world.mark_read(MarkReadCommand(conversation_id=conversation.id))
    assert result.receipts_sent
    assert (await world.conversation(session.id, ALICE)).unread_count == 0
    assert world.fake.connection(session.id).read_marks[-1] == (Jid.parse(ALICE), ["M2", "M3"])
    assert world.events("conversation.updated")[-1].data["unread_count"] == 0
    # Reading a conversation with nothing unread publishes nothing and sends nothing.
    published = len(world.events())
    marks = len(world.fake.connection(session.id).read_marks)
    await world.mark_read(MarkReadCommand(conversation_id=conversation.id))
    assert len(world.events()) == published
    assert len(world.fake.connection(session.id).read_marks) == marks


async def test_mark_read_in_a_group_sends_receipts_per_sender(world: World) -> None:
    session = await world.connected_session()
    for wa_id, sender in (("G1", ALICE), ("G2", BOB), ("G3", ALICE)):
        await world.receive(session.id, incoming(wa_id, chat=GROUP, sender=sender))
    conversation = await world.conversation(session.id, GROUP)
    await world.mark_read(MarkReadCommand(conversation_id=conversation.id))
    marks = world.fake.connection(session.id).read_marks
    assert sorted((str(chat), ids) for chat, ids in marks) == [
        (GROUP, ["G1", "G3"]),
        (GROUP, ["G2"]),
    ]


async def test_mark_read_without_a_connection_still_reads_here(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    result = await world.mark_read(MarkReadCommand(conversation_id=conversation.id))
    assert not result.receipts_sent
    assert (await world.conversation(session.id, ALICE)).unread_count == 0


# -- listing --------------------------------------------------------------------------------


async def test_listing_as_a_principal_checks_access_in_the_same_unit_of_work(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1", chat=ALICE))
    query = ListConversationsQuery(session_id=session.id)
    admin = Principal(user_id="u-admin", organization_id=session.organization_id, role=Role.ADMIN)
    page = await world.list_conversations(query, principal=admin)
    assert [str(c.chat) for c in page.items] == [ALICE]
    bia = await agent(world, session.organization_id)
    as_bia = Principal(user_id=bia.id, organization_id=bia.organization_id, role=Role.AGENT)
    with pytest.raises(PermissionDenied):
        await world.list_conversations(query, principal=as_bia)
    outsider = Principal(user_id="u-x", organization_id="another-org", role=Role.ADMIN)
    for principal in (outsider, None):
        with pytest.raises(SessionNotFound):
            await world.list_conversations(
                ListConversationsQuery(session_id="no-such-session"), principal=principal
            )
    with pytest.raises(SessionNotFound):  # another organization's session does not exist
        await world.list_conversations(query, principal=outsider)
    calls: Counter[str] = Counter()
    units = 0

    def uow() -> MemoryUnitOfWork:
        nonlocal units
        units += 1
        return counting(world.store, calls)()

    await ListConversations(uow)(query, principal=admin)
    assert units == 1


async def test_conversations_are_listed_newest_first_with_filters_and_cursors(
    world: World, session: Session
) -> None:
    base = world.clock.now() - timedelta(hours=1)
    chats = [f"55219000000{i:02d}@s.whatsapp.net" for i in range(7)]
    for i, chat in enumerate(chats):
        await world.receive(
            session.id,
            incoming(f"M{i}", chat=chat, at=base + timedelta(minutes=i), push_name=f"P{i}"),
        )
    await world.receive(
        session.id,
        incoming("G", chat=GROUP, sender=BOB, chat_name="Family", at=base - timedelta(minutes=1)),
    )
    page = await world.list_conversations(ListConversationsQuery(session_id=session.id, limit=3))
    seen = [str(c.chat) for c in page.items]
    while page.next_cursor:
        page = await world.list_conversations(
            ListConversationsQuery(session_id=session.id, limit=3, cursor=page.next_cursor)
        )
        seen += [str(c.chat) for c in page.items]
    assert seen == [*reversed(chats), GROUP]

    family = await world.list_conversations(
        ListConversationsQuery(session_id=session.id, text="fam")
    )
    assert [str(c.chat) for c in family.items] == [GROUP]
    by_contact = await world.list_conversations(
        ListConversationsQuery(session_id=session.id, text="p3")
    )
    assert [str(c.chat) for c in by_contact.items] == [chats[3]]

    user = await agent(world, session.organization_id)
    target = await world.conversation(session.id, chats[2])
    await world.assign(AssignConversationCommand(conversation_id=target.id, assignee_id=user.id))
    await world.mark_read(MarkReadCommand(conversation_id=target.id))
    mine = await world.list_conversations(
        ListConversationsQuery(session_id=session.id, assignee_id=user.id)
    )
    assert [c.id for c in mine.items] == [target.id]
    active = await world.list_conversations(
        ListConversationsQuery(session_id=session.id, status=ConversationStatus.ACTIVE)
    )
    assert [c.id for c in active.items] == [target.id]
    unread = await world.list_conversations(
        ListConversationsQuery(session_id=session.id, unread_only=True)
    )
    assert target.id not in {c.id for c in unread.items} and len(unread.items) == 7

    with pytest.raises(InvalidInput):
        await world.list_conversations(ListConversationsQuery(session_id=session.id, limit=0))
    with pytest.raises(InvalidCursor):
        await world.list_conversations(ListConversationsQuery(session_id=session.id, cursor="%%"))


async def test_messages_come_a_page_at_a_time_newest_page_first(
    world: World, session: Session
) -> None:
    base = world.clock.now() - timedelta(hours=1)
    for i in range(7):
        await world.receive(session.id, incoming(f"M{i}", at=base + timedelta(minutes=i)))
    conversation = await world.conversation(session.id, ALICE)
    pages = []
    before = None
    while True:
        page = await world.get_messages(
            GetMessagesQuery(conversation_id=conversation.id, before=before, limit=3)
        )
        pages.append([m.wa_id for m in page.items])
        if page.next_cursor is None:
            break
        before = page.next_cursor
    assert pages == [["M4", "M5", "M6"], ["M1", "M2", "M3"], ["M0"]]
    with pytest.raises(ConversationNotFound):
        await world.get_messages(GetMessagesQuery(conversation_id="nope"))


async def test_reading_messages_as_a_principal_checks_access_in_the_same_unit_of_work(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1", chat=ALICE))
    conversation = await world.conversation(session.id, ALICE)
    query = GetMessagesQuery(conversation_id=conversation.id)
    bia = await agent(world, session.organization_id)
    as_bia = Principal(user_id=bia.id, organization_id=bia.organization_id, role=Role.AGENT)
    with pytest.raises(PermissionDenied):  # the session is not shared with her
        await world.get_messages(query, principal=as_bia)
    await world.assign(
        AssignConversationCommand(conversation_id=conversation.id, assignee_id=bia.id)
    )
    page = await world.get_messages(query, principal=as_bia)  # assigned to her: she sees it
    assert [m.wa_id for m in page.items] == ["M1"]
    outsider = Principal(user_id="u-x", organization_id="another-org", role=Role.ADMIN)
    for conversation_id in (conversation.id, "nope"):
        with pytest.raises(ConversationNotFound):
            await world.get_messages(
                GetMessagesQuery(conversation_id=conversation_id), principal=outsider
            )
    units = 0

    def uow() -> MemoryUnitOfWork:
        nonlocal units
        units += 1
        return MemoryUnitOfWork(world.store)

    admin = Principal(user_id="u-a", organization_id=session.organization_id, role=Role.ADMIN)
    assert len((await GetMessages(uow)(query, principal=admin)).items) == 1
    assert units == 1


# -- changing a conversation ----------------------------------------------------------------


async def test_assigning_takes_a_pending_conversation_and_checks_the_user(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    user = await agent(world, session.organization_id)
    assigned = await world.assign(
        AssignConversationCommand(conversation_id=conversation.id, assignee_id=user.id)
    )
    assert (assigned.assignee_id, assigned.status) == (user.id, ConversationStatus.ACTIVE)
    last = world.store.events[-1]
    assert (last.name, last.assignee_id) == ("conversation.updated", user.id)

    other_org, stranger = await world.organization("Other")
    with pytest.raises(UserNotFound):
        await world.assign(
            AssignConversationCommand(conversation_id=conversation.id, assignee_id=stranger.id)
        )
    back = await world.assign(
        AssignConversationCommand(conversation_id=conversation.id, assignee_id=None)
    )
    assert back.assignee_id is None
    assert other_org.id != session.organization_id


async def test_set_status(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    await world.set_status(
        SetConversationStatusCommand(
            conversation_id=conversation.id, status=ConversationStatus.CLOSED
        )
    )
    assert (await world.conversation(session.id, ALICE)).status is ConversationStatus.CLOSED
    assert world.events("conversation.updated")[-1].data["status"] == "closed"
    with pytest.raises(ConversationNotFound):
        await world.set_status(
            SetConversationStatusCommand(conversation_id="nope", status=ConversationStatus.CLOSED)
        )


async def test_update_conversation_links_it_to_the_host_system(
    world: World, session: Session
) -> None:
    await world.receive(session.id, incoming("M1"))
    conversation = await world.conversation(session.id, ALICE)
    user = await agent(world, session.organization_id)
    await world.update_conversation(
        UpdateConversationCommand(
            conversation_id=conversation.id,
            external_ref="crm:client:42",
            metadata={"lead": {"stage": "proposal"}},
            assignee_id=user.id,
            status=ConversationStatus.ACTIVE,
        )
    )
    stored = await world.conversation(session.id, ALICE)
    assert (stored.external_ref, stored.metadata, stored.assignee_id, stored.status) == (
        "crm:client:42",
        {"lead": {"stage": "proposal"}},
        user.id,
        ConversationStatus.ACTIVE,
    )
    assert world.events("conversation.updated")[-1].data["external_ref"] == "crm:client:42"
    # Only what is given changes; "" clears the reference; None unassigns.
    await world.update_conversation(
        UpdateConversationCommand(conversation_id=conversation.id, external_ref="")
    )
    stored = await world.conversation(session.id, ALICE)
    assert (stored.external_ref, stored.assignee_id) == (None, user.id)
    await world.update_conversation(
        UpdateConversationCommand(conversation_id=conversation.id, assignee_id=None)
    )
    assert (await world.conversation(session.id, ALICE)).assignee_id is None
    assert UNSET is UpdateConversationCommand(conversation_id="x").assignee_id
    with pytest.raises(InvalidInput):
        await world.update_conversation(
            UpdateConversationCommand(conversation_id=conversation.id, external_ref="x" * 201)
        )


async def test_update_contact_links_it_to_the_host_system(world: World, session: Session) -> None:
    await world.receive(session.id, incoming("M1"))
    await world.update_contact(
        UpdateContactCommand(
            session_id=session.id,
            jid=Jid.parse(ALICE),
            external_ref="crm:42",
            metadata={"vip": True},
        )
    )
    contact = await world.contact(session.id, ALICE)
    assert (contact.external_ref, contact.metadata) == ("crm:42", {"vip": True})
    with pytest.raises(ContactNotFound):
        await world.update_contact(UpdateContactCommand(session_id=session.id, jid=Jid.parse(BOB)))
