"""``SqlSessions.get_many`` reads the driver's values without SQLAlchemy's result processing
(``mapping.session_of``): it must read back exactly what the Core read (``get``) gives, on
each database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.contract.builders import at, fields_of, seed
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session, SessionStatus


async def test_sessions_are_read_as_the_core_path_reads_them(engine: AsyncEngine) -> None:
    make = SqlUnitOfWorkFactory(engine)
    world = await seed(make)
    elsewhere = timezone(timedelta(hours=5, minutes=30))
    full = Session(
        organization_id=world.org_id,
        owner_id=world.admin.id,
        name="Zoë's phone",
        created_at=at(1).astimezone(elsewhere),
        status=SessionStatus.BANNED,
        status_reason="temporary_ban",
        status_changed_at=datetime(2026, 3, 4, 5, 6, 7, 1),
        jid=Jid("5566996000001", "s.whatsapp.net"),
        lid=Jid("271600000001", "lid"),
        push_name="Zoë",
        qr="2@abc,def",
        qr_expires_at=at(2),
        awaiting_scan_since=at(3),
        paired_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        last_connected_at=at(5),
        banned_until=at(6),
        desired_running=True,
        shared_with=frozenset({"user-b", "user-a"}),
    )
    bare = Session(
        organization_id=world.org_id, owner_id=world.admin.id, name="b", created_at=at(7)
    )
    async with make() as uow:
        for session in (full, bare):
            await uow.sessions.add(session)
        await uow.commit()
    async with make() as uow:
        ids = [full.id, bare.id, world.session_id, "absent", full.id]
        many = await uow.sessions.get_many(ids)
        one = [await uow.sessions.get(i) for i in sorted({full.id, bare.id, world.session_id})]
    assert [fields_of(s) for s in many] == [fields_of(s) for s in one if s is not None]
    assert len(many) == 3
    got = {s.id: s for s in many}[full.id]
    assert got.created_at.tzinfo is UTC
    assert got.shared_with == frozenset({"user-a", "user-b"})
    assert got.desired_running is True
    assert {s.id: s for s in many}[bare.id].desired_running is False
