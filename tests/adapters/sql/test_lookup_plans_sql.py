"""The batched look-ups ingest and every send run, and the inbox search, find contacts and
conversations through an index on their address, whatever the session holds: SQLite plans
them without statistics (whatsgate gathers none), so the text must leave it no worse plan."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite

from tests.contract.builders import contact, phone, seed
from tests.databases import copy_sqlite
from whatsgate.adapters.sql import tables
from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.repositories import (
    _conversation_search,
    _lookup_sql,
    _SearchShape,
    one_hop_driver,
)
from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
from whatsgate.ports.repositories import ConversationQuery


def plan(template: Path, sql: str) -> list[str]:
    with sqlite3.connect(template) as connection:
        connection.create_function("wg_casefold", 1, str.casefold, deterministic=True)
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", ["x"] * sql.count("?"))
        return [row[3] for row in rows]


@pytest.mark.parametrize("sessions", [1, 3])
def test_contacts_are_looked_up_by_session_and_address_in_its_index(
    sqlite_template: Path, sessions: int
) -> None:
    """Not by session alone: that read every contact of the session for each look-up
    (10 ms at 20,000 contacts)."""
    sql = _lookup_sql(sqlite.dialect(), tables.contacts, sessions, 5, False)
    steps = plan(sqlite_template, sql)
    searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
    assert searches == [
        "SEARCH contacts USING INDEX ix_contacts_session_id_jid (session_id=? AND jid=?)",
        "SEARCH contacts USING INDEX ix_contacts_session_id_lid (session_id=? AND lid=?)",
    ], steps


def test_conversations_are_looked_up_by_session_and_chat_in_its_index(
    sqlite_template: Path,
) -> None:
    steps = plan(sqlite_template, _lookup_sql(sqlite.dialect(), tables.conversations, 2, 5, False))
    assert len(steps) == 1 and "(session_id=? AND chat=?)" in steps[0], steps


def test_the_inbox_search_finds_a_conversations_contact_by_its_address_in_its_index(
    sqlite_template: Path,
) -> None:
    """Searching the inbox by text looks for the contact of each conversation whose name did
    not match: through the (session, jid) and (session, lid) indexes, not by reading every
    contact of the session once per conversation (20 s for a search at 10,000 conversations
    and contacts, against 45 ms)."""
    query = ConversationQuery(session_id="s", text="x")
    stmt = _conversation_search("sqlite", _SearchShape.of(query), True)
    steps = plan(sqlite_template, str(stmt.compile(dialect=sqlite.dialect())))
    contacts = [s for s in steps if "contacts" in s]
    assert contacts == [
        "SEARCH contacts USING INDEX ix_contacts_session_id_jid (session_id=? AND jid=?)",
        "SEARCH contacts USING INDEX ix_contacts_session_id_lid (session_id=? AND lid=?)",
    ], steps


async def test_the_contact_list_reads_its_page_in_id_order_without_sorting(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """A page of ``GET …/contacts`` (id order, from a cursor or not) comes from the
    ``(session_id, id)`` index: before it, each page sorted all of the session's contacts."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    try:
        make = SqlUnitOfWorkFactory(engine)
        world = await seed(make)
        async with make() as uow:
            await uow.contacts.save_many([contact(world, phone(n)) for n in (1, 2)])
            await uow.commit()
        ran: list[str] = []
        async with make() as uow:
            driver = one_hop_driver(uow.connection)
            assert driver is not None and driver._connection is not None
            driver._connection.set_trace_callback(ran.append)
            first = await uow.contacts.search(world.session_id, limit=1)
            await uow.contacts.search(world.session_id, cursor=first.next_cursor, limit=1)
            driver._connection.set_trace_callback(None)
        pages = [sql for sql in ran if sql.startswith("SELECT") and "FROM contacts" in sql]
        assert len(pages) == 2 and "id >" in pages[1], ran
        for sql in pages:
            steps = plan(Path(str(engine.url.database)), sql)
            assert steps == [
                "SEARCH contacts USING INDEX ix_contacts_session_id_id (session_id=?)"
                if "id >" not in sql
                else "SEARCH contacts USING INDEX ix_contacts_session_id_id (session_id=? AND id>?)"
            ], steps
    finally:
        await engine.dispose()


async def test_deleting_a_session_reads_only_its_own_rows(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """Every statement of a session's delete (its steps too), foreign keys' checks and
    cascades included, searches by session: before migration 0003, the outbox's and the send
    attempts' deletes read every session's rows, which only grow (nothing is pruned), while
    holding the writers' turn."""
    engine = create_engine_for(copy_sqlite(sqlite_template, tmp_path))
    try:
        make = SqlUnitOfWorkFactory(engine)
        world = await seed(make)
        ran: list[str] = []
        async with make() as uow:
            driver = one_hop_driver(uow.connection)
            assert driver is not None and driver._connection is not None
            driver._connection.set_trace_callback(ran.append)
            assert await uow.sessions.clear(world.session_id, 100) == 0
            await uow.sessions.delete(world.session_id)
            await uow.commit()
            driver._connection.set_trace_callback(None)
        deletes = list(dict.fromkeys(sql for sql in ran if sql.startswith("DELETE")))
        # A step (clear): the session's webhooks' attempts and deliveries, and the six tables
        # under it; then those six all at once, and the session.
        assert len(deletes) == 15, ran
        with sqlite3.connect(Path(str(engine.url.database))) as connection:
            connection.execute("PRAGMA foreign_keys = ON")
            for sql in deletes:
                steps = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}")]
                searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
                assert searches and all(s.startswith("SEARCH") for s in searches), (sql, steps)
    finally:
        await engine.dispose()
