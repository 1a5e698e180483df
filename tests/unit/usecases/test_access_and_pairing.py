"""Tenancy checks, the QR of a session, the caller's own session, suspend at shutdown."""

from __future__ import annotations

import pytest

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import (
    ConversationNotFound,
    InvalidInput,
    MessageNotFound,
    PermissionDenied,
    SessionAlreadyConnected,
    SessionNotFound,
)
from whatsgate.domain.organization import Role, User
from whatsgate.domain.session import SessionStatus
from whatsgate.usecases.access import Access
from whatsgate.usecases.events import ReadEvents, ReadEventsQuery
from whatsgate.usecases.inbox import AssignConversation, AssignConversationCommand
from whatsgate.usecases.pairing import GetQrCode, OwnDefaultSession
from whatsgate.usecases.session_admin import (
    SuspendSessions,
    UpdateSession,
    UpdateSessionCommand,
)
from whatsgate.usecases.sessions import CreateSessionCommand, InitializeCommand, RestoreSessions

from .harness import ALICE, BOB, World, incoming


def as_principal(user: User) -> Principal:
    return Principal(user_id=user.id, organization_id=user.organization_id, role=user.role)


async def add_agent(world: World, organization_id: str, name: str = "Bea") -> User:
    agent = User(
        organization_id=organization_id, name=name, role=Role.AGENT, created_at=world.clock.now()
    )
    async with world.uow() as uow:
        await uow.users.add(agent)
        await uow.commit()
    return agent


@pytest.fixture
def world() -> World:
    return World()


async def test_access_hides_other_organizations_and_unshared_sessions(world: World) -> None:
    session = await world.connected_session()
    await world.receive(session.id, incoming("WA1", chat=ALICE))
    await world.receive(session.id, incoming("WA2", chat=BOB))
    conversation = await world.conversation(session.id, ALICE)
    message = await world.message_by_wa_id(session.id, "WA1")
    _, stranger = await world.organization("Other")
    agent = await add_agent(world, session.organization_id)
    access = Access(world.uow)

    outsider = as_principal(stranger)
    with pytest.raises(SessionNotFound):
        await access.session(outsider, session.id)
    with pytest.raises(ConversationNotFound):
        await access.conversation(outsider, conversation.id)
    with pytest.raises(MessageNotFound):
        await access.message(outsider, message.id)
    assert await access.sessions(outsider) == []

    colleague = as_principal(agent)
    with pytest.raises(PermissionDenied):
        await access.session(colleague, session.id)
    with pytest.raises(PermissionDenied):
        await access.sender(colleague, session.id, ALICE)
    await AssignConversation(world.uow, world.clock)(
        AssignConversationCommand(conversation_id=conversation.id, assignee_id=agent.id)
    )
    assert (await access.conversation(colleague, conversation.id)).id == conversation.id
    assert (await access.message(colleague, message.id)).id == message.id
    assert (await access.sender(colleague, session.id, "+55 66 99628-5154")).id == session.id
    with pytest.raises(PermissionDenied):
        await access.sender(colleague, session.id, BOB)
    bob = await world.conversation(session.id, BOB)
    with pytest.raises(PermissionDenied):
        await access.conversation(colleague, bob.id)
    # The agent's event log: the assigned conversation's events only.
    page = await ReadEvents(world.uow)(ReadEventsQuery(principal=colleague))
    assert page.items and {e.assignee_id for e in page.items} == {agent.id}


async def test_only_members_of_the_organization_can_be_given_a_session(world: World) -> None:
    session = await world.new_session()
    agent = await add_agent(world, session.organization_id)
    _, stranger = await world.organization("Other")
    update = UpdateSession(world.uow)
    with pytest.raises(InvalidInput):
        await update(
            UpdateSessionCommand(session_id=session.id, shared_with=frozenset({stranger.id}))
        )
    shared = await update(
        UpdateSessionCommand(
            session_id=session.id, name="support", shared_with=frozenset({agent.id})
        )
    )
    assert (shared.name, shared.shared_with) == ("support", frozenset({agent.id}))
    assert (await world.session(session.id)).shared_with == frozenset({agent.id})
    assert [s.id for s in await Access(world.uow).sessions(as_principal(agent))] == [session.id]


async def test_qr_starts_a_resting_session_and_refuses_a_paired_one(world: World) -> None:
    session = await world.new_session()
    get_qr = GetQrCode(world.uow, world.connections, world.initialize, world.settings)
    shown = await get_qr(session.id)
    assert shown.status is SessionStatus.AWAITING_SCAN and shown.qr is not None
    assert (await get_qr(session.id)).qr == shown.qr  # the same QR while it is valid
    assert len(world.fake.opens_of(session.id)) == 1
    await world.fake.scan(session.id)
    with pytest.raises(SessionAlreadyConnected):
        await get_qr(session.id)
    with pytest.raises(SessionNotFound):
        await get_qr("nope")


async def test_the_callers_own_session_is_made_once_with_a_free_name(world: World) -> None:
    session = await world.new_session("Ana")  # an admin named Ana already owns "Ana"
    org_id = session.organization_id
    agent = await add_agent(world, org_id, name="Ana")
    own = OwnDefaultSession(world.uow, world.create)
    mine = await own(as_principal(agent))
    assert (mine.name, mine.owner_id) == ("Ana-2", agent.id)
    assert (await own(as_principal(agent))).id == mine.id


async def test_suspend_keeps_the_desire_so_restore_reopens(world: World) -> None:
    paired = await world.connected_session()
    idle = await world.create(
        CreateSessionCommand(
            organization_id=paired.organization_id, owner_id=paired.owner_id, name="idle"
        )
    )
    suspended = await SuspendSessions(world.uow, world.connections, world.clock)()
    assert suspended == [paired.id]
    assert (await world.session(idle.id)).desired_running is False
    stored = await world.session(paired.id)
    assert (stored.status, stored.status_reason, stored.desired_running) == (
        SessionStatus.STOPPED,
        "shutdown",
        True,
    )
    assert not world.connections.is_open(paired.id)
    world.build()
    result = await RestoreSessions(world.uow, world.initialize, world.settings)()
    assert result.restored == [paired.id]
    await world.initialize(InitializeCommand(session_id=paired.id))
    assert (await world.session(paired.id)).status is SessionStatus.CONNECTED
