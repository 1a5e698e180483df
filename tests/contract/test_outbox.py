"""OutboxRepository: what is due, in order; counts; the next wake-up time."""

from __future__ import annotations

from tests.contract.builders import World, add_session, at, outbox_entry, seed
from tests.contract.conftest import Backend
from whatsgate.domain.outbox import OutboxState, RetryPolicy, SendAttempt


async def test_due_is_pending_and_ripe_oldest_first_limited(backend: Backend) -> None:
    world = await seed(backend.uow)
    late = outbox_entry(world, "m-late", at(30))
    early = outbox_entry(world, "m-early", at(10))
    tie_a = outbox_entry(world, "m-tie-a", at(20))
    tie_b = outbox_entry(world, "m-tie-b", at(20))
    future = outbox_entry(world, "m-future", at(100))
    done = outbox_entry(world, "m-done", at(1), state=OutboxState.DONE)
    failed = outbox_entry(world, "m-failed", at(1), state=OutboxState.FAILED)
    async with backend.uow() as uow:
        for entry in (late, early, tie_b, future, done, failed, tie_a):
            await uow.outbox.add(entry)
        await uow.commit()
    async with backend.uow() as uow:
        due = await uow.outbox.due(at(30))
        first_two = await uow.outbox.due(at(30), limit=2)
        exactly_now = await uow.outbox.due(at(10))
    ties = sorted([tie_a, tie_b], key=lambda e: e.id)
    assert [e.id for e in due] == [early.id, ties[0].id, ties[1].id, late.id]
    assert [e.id for e in first_two] == [early.id, ties[0].id]
    assert [e.id for e in exactly_now] == [early.id]


async def test_counts_and_next_due_follow_state_changes(backend: Backend) -> None:
    world = await seed(backend.uow)
    other = World(world.organization, world.admin, await add_session(backend.uow, world, "B"))
    a = outbox_entry(world, "m-a", at(10))
    b = outbox_entry(world, "m-b", at(20))
    c = outbox_entry(other, "m-c", at(5), state=OutboxState.DONE)
    async with backend.uow() as uow:
        assert await uow.outbox.next_due_at() is None
        for entry in (a, b, c):
            await uow.outbox.add(entry)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.outbox.pending_count() == 2
        assert await uow.outbox.pending_count(world.session_id) == 2
        assert await uow.outbox.pending_count(other.session_id) == 0
        # A bounded count stops at its limit (SendMessage counts only what pacing needs).
        assert await uow.outbox.pending_count(world.session_id, limit=1) == 1
        assert await uow.outbox.pending_count(world.session_id, limit=3) == 2
        assert await uow.outbox.pending_count(other.session_id, limit=3) == 0
        assert await uow.outbox.pending_count(limit=1) == 1
        assert await uow.outbox.next_due_at() == at(10)
        entry = await uow.outbox.get_for_message("m-a")
        assert entry is not None
        assert not entry.fail_attempt("timeout", at(11), RetryPolicy())
        await uow.outbox.save(entry)
        await uow.commit()
    async with backend.uow() as uow:
        assert await uow.outbox.next_due_at() == at(20)
        saved = await uow.outbox.get_for_message("m-a")
        assert saved is not None
        assert (saved.attempts, saved.last_error, saved.next_attempt_at) == (1, "timeout", at(21))
        assert [e.id for e in await uow.outbox.due(at(20))] == [b.id]


async def test_heads_are_each_sessions_oldest_pending_entry_in_due_order(
    backend: Backend,
) -> None:
    a = await seed(backend.uow)
    b = World(a.organization, a.admin, await add_session(backend.uow, a, "B"))
    c = World(a.organization, a.admin, await add_session(backend.uow, a, "C"))
    entries = [
        # Session A: an older entry already sent does not count; the head is the older pending.
        outbox_entry(a, "a-done", at(1), state=OutboxState.DONE, created_at=at(0)),
        outbox_entry(a, "a-head", at(50), created_at=at(1)),
        outbox_entry(a, "a-next", at(5), created_at=at(2)),
        # Session B: two created at once, the id decides.
        outbox_entry(b, "b-1", at(20), created_at=at(3)),
        outbox_entry(b, "b-2", at(20), created_at=at(3)),
        # Session C: nothing pending.
        outbox_entry(c, "c-failed", at(1), state=OutboxState.FAILED),
    ]
    async with backend.uow() as uow:
        for entry in reversed(entries):
            await uow.outbox.add(entry)
        await uow.commit()
    b_head = min(entries[3:5], key=lambda e: e.id)
    async with backend.uow() as uow:
        heads = await uow.outbox.heads()
        only_a = await uow.outbox.heads(a.session_id)
        only_c = await uow.outbox.heads(c.session_id)
    assert [e.id for e in heads] == [b_head.id, entries[1].id]  # by next_attempt_at
    assert [e.message_id for e in only_a] == ["a-head"]
    assert only_c == []


async def test_fronts_are_one_sessions_first_pending_entries_in_send_order(
    backend: Backend,
) -> None:
    a = await seed(backend.uow)
    b = World(a.organization, a.admin, await add_session(backend.uow, a, "B"))
    entries = [
        outbox_entry(a, "a-done", at(1), state=OutboxState.DONE, created_at=at(0)),
        outbox_entry(a, "a-1", at(50), created_at=at(1)),  # held back: still the head
        outbox_entry(a, "a-2", at(5), created_at=at(2)),
        outbox_entry(a, "a-3", at(5), created_at=at(3)),
        outbox_entry(a, "a-failed", at(1), state=OutboxState.FAILED, created_at=at(4)),
        outbox_entry(a, "a-4", at(5), created_at=at(5)),
        outbox_entry(b, "b-1", at(1), created_at=at(0)),
    ]
    async with backend.uow() as uow:
        for entry in reversed(entries):
            await uow.outbox.add(entry)
        await uow.commit()
    async with backend.uow() as uow:
        two = await uow.outbox.fronts(a.session_id, limit=2)
        all_a = await uow.outbox.fronts(a.session_id, limit=10)
        only_b = await uow.outbox.fronts(b.session_id, limit=10)
    assert [e.message_id for e in two] == ["a-1", "a-2"]
    assert [e.message_id for e in all_a] == ["a-1", "a-2", "a-3", "a-4"]
    assert [e.message_id for e in only_b] == ["b-1"]


async def test_batches_of_entries_and_attempts_are_read_and_written_together(
    backend: Backend,
) -> None:
    world = await seed(backend.uow)
    entries = [outbox_entry(world, f"m-{n}", at(n)) for n in range(3)]
    async with backend.uow() as uow:
        await uow.outbox.save_many(entries)
        await uow.commit()
    async with backend.uow() as uow:
        got = await uow.outbox.get_many([entries[2].id, "nope", entries[0].id, entries[2].id])
        assert sorted(e.id for e in got) == sorted([entries[0].id, entries[2].id])
        assert await uow.outbox.get_many([]) == []
        first = next(e for e in got if e.id == entries[0].id)
        assert first.message_id == "m-0" and first.next_attempt_at == at(0)
        first.succeed(at(40))
        attempts = [
            SendAttempt(
                organization_id=world.org_id,
                session_id=world.session_id,
                outbox_id=e.id,
                message_id=e.message_id,
                attempt=1,
                started_at=at(40),
                latency_ms=3.5,
                request_summary="text",
                ok=True,
                response="wa_id=X",
            )
            for e in got
        ]
        await uow.outbox.save_many([first])
        await uow.outbox.add_attempts(attempts)
        await uow.outbox.add_attempts([])
        await uow.commit()
    async with backend.uow() as uow:
        saved = await uow.outbox.get_for_message("m-0")
        logged = await uow.outbox.attempts_for_message("m-2")
        assert await uow.outbox.pending_count(world.session_id) == 2
    assert saved is not None and saved.state is OutboxState.DONE and saved.attempts == 1
    assert [(a.outbox_id, a.latency_ms, a.response) for a in logged] == [
        (entries[2].id, 3.5, "wa_id=X")
    ]
