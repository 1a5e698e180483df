"""Transactions: nothing persists without a commit, a failure rolls back everything (even in
the middle of a 500-message history chunk), reads hand out copies."""

from __future__ import annotations

import pytest

from tests.contract.builders import at, conversation, message, phone, seed
from tests.contract.conftest import Backend
from whatsgate.domain.conversation import ConversationStatus
from whatsgate.domain.session import SessionStatus
from whatsgate.ports.repositories import ConversationQuery


class Boom(Exception):
    pass


async def test_leaving_without_commit_rolls_back(backend: Backend) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1))
    async with backend.uow() as uow:
        await uow.conversations.save(chat)
        session = await uow.sessions.get(world.session_id)
        assert session is not None
        session.rename("Renamed")
        await uow.sessions.save(session)
        # The unit of work sees its own writes...
        assert await uow.conversations.get(chat.id) is not None
    # ...and nothing else ever does.
    async with backend.uow() as uow:
        assert await uow.conversations.get(chat.id) is None
        stored = await uow.sessions.get(world.session_id)
        assert stored is not None and stored.name == "Sales"


async def test_explicit_rollback_discards_and_the_unit_goes_on(backend: Backend) -> None:
    world = await seed(backend.uow)
    first, second = conversation(world, phone(1)), conversation(world, phone(2))
    async with backend.uow() as uow:
        await uow.conversations.save(first)
        await uow.rollback()
        await uow.conversations.save(second)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.conversations.get(first.id) is None
        assert await uow.conversations.get(second.id) is not None


async def test_two_commits_in_one_block(backend: Backend) -> None:
    world = await seed(backend.uow)
    first, second = conversation(world, phone(1)), conversation(world, phone(2))
    async with backend.uow() as uow:
        await uow.conversations.save(first)
        await uow.commit()
        await uow.conversations.save(second)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.conversations.get(first.id) is not None
        assert await uow.conversations.get(second.id) is not None


async def test_failure_in_the_middle_of_a_history_chunk_rolls_back_everything(
    backend: Backend,
) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1))
    chunk = [message(world, chat.id, f"H{i:04d}", at(i)) for i in range(500)]
    wa_ids = [f"H{i:04d}" for i in range(500)]

    async def half_import() -> None:
        async with backend.uow() as uow:
            await uow.conversations.save(chat)
            inserted = await uow.messages.add_new(chunk[:250])
            assert len(inserted) == 250
            await uow.messages.add_new(chunk[250:])
            session = await uow.sessions.get(world.session_id)
            assert session is not None
            session.start(at(1))
            await uow.sessions.save(session)
            raise Boom  # e.g. a contact that cannot be parsed, after half the work

    with pytest.raises(Boom):
        await half_import()

    async with backend.uow() as uow:
        assert await uow.conversations.get(chat.id) is None
        assert await uow.messages.existing_wa_ids(world.session_id, wa_ids) == set()
        assert (await uow.messages.list_for_conversation(chat.id)).items == []
        session = await uow.sessions.get(world.session_id)
        assert session is not None and session.status is SessionStatus.STOPPED
    # The same chunk imports cleanly afterwards.
    async with backend.uow() as uow:
        await uow.conversations.save(chat)
        assert len(await uow.messages.add_new(chunk)) == 500
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.messages.existing_wa_ids(world.session_id, wa_ids) == set(wa_ids)


async def test_reads_are_copies(backend: Backend) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1), metadata={"a": 1})
    async with backend.uow() as uow:
        await uow.conversations.save(chat)
        chat.set_status(ConversationStatus.CLOSED, at(1))  # after save, not saved again
        chat.metadata["a"] = 2
        await uow.commit()
    async with backend.uow() as uow:
        one = await uow.conversations.get(chat.id)
        two = await uow.conversations.get(chat.id)
        assert one is not None and two is not None
        assert one is not two
        assert one.status is ConversationStatus.PENDING
        assert one.metadata == {"a": 1}
        one.metadata["a"] = 3
        one.assign("someone", at(2))
        again = await uow.conversations.get(chat.id)
        assert again is not None
        assert again.metadata == {"a": 1} and again.assignee_id is None


async def test_units_of_work_do_not_see_each_others_uncommitted_writes(
    backend: Backend,
) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1))
    async with backend.uow() as writer:
        await writer.conversations.save(chat)
        async with backend.uow() as reader:
            assert await reader.conversations.get(chat.id) is None
        await writer.commit()
    async with backend.uow() as reader:
        assert await reader.conversations.get(chat.id) is not None


async def test_lists_and_lookups_hand_out_copies_too(backend: Backend) -> None:
    world = await seed(backend.uow)
    chat = conversation(world, phone(1), metadata={"a": 1})
    first = message(world, chat.id, "W1", at(1))
    async with backend.uow() as uow:
        await uow.conversations.save(chat)
        await uow.messages.add_new([first])
        await uow.commit()
    async with backend.uow() as uow:
        [listed] = (
            await uow.conversations.search(ConversationQuery(session_id=world.session_id))
        ).items
        listed.metadata["a"] = 2
        by_chat = await uow.conversations.get_by_chat(world.session_id, chat.chat)
        assert by_chat is not None and by_chat.metadata == {"a": 1}
        by_chat.metadata["a"] = 3
        [shown] = (await uow.messages.list_for_conversation(chat.id)).items
        shown.reactions["x"] = "y"
        by_wa = await uow.messages.get_by_wa_id(world.session_id, "W1")
        assert by_wa is not None and by_wa.reactions == {}
        by_wa.reactions["x"] = "z"
        again = await uow.conversations.get(chat.id)
        again_message = await uow.messages.get(first.id)
    assert again is not None and again.metadata == {"a": 1}
    assert again_message is not None and again_message.reactions == {}
