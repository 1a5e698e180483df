"""History import: messages/s through ImportHistory on SQLite, against raw sqlite3.

Reference: ``sqlite3.executemany`` of 500 rows per transaction, WAL and whatsgate's pragmas,
into a 10-column table (TEXT primary key): the ceiling of the disk, the driver and SQLite for
the same number of message rows, with none of the work an import does.

Measured: ``ImportHistory`` on the SQL unit of work (aiosqlite, migrated schema), one
``HistoryBatch`` of N messages over N/50 direct chats with their contacts, grouped by chat as
WhatsApp's history sync hands them (conversation after conversation): contacts,
conversations, messages and events are written, 500 messages per transaction.

Two diagnostics, not targets, say where the floor is: the reference's rows through SQLAlchemy
Core + aiosqlite (``framework_floor``), and raw sqlite3 writing the import's own 26-column
rows into whatsgate's schema, with its indexes and foreign keys (``schema_floor``).

Targets: ≥ 25,000 msgs/s and ≥ 0.30x the reference.

With ``WHATSGATE_BENCH_POSTGRES_URL`` set, the measured import runs on PostgreSQL too
(``pg_import_*``), in a new migrated schema each run: a figure to report, no target.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._fixtures import (
    add_postgres_row,
    incoming,
    missing,
    phone,
    postgres_engine,
    postgres_url,
    scratch_dir,
    seed_session,
    sqlite_connect,
    sqlite_url,
)
from bench._harness import Results, cli, default_runs, finish, repeat

NAME = "history_import"
CHUNK = 500
PER_CHAT = 50
MEASURED = ("whatsgate.adapters.sql.uow", "whatsgate.usecases.history")


def reference(n: int) -> float:
    """Raw sqlite3: n rows of 10 columns, 500 per transaction. Returns rows/s."""
    rows = [
        (
            f"msg-{i:012d}",
            "session-1",
            f"conv-{i % max(n // 50, 1):06d}",
            f"3EB0{i:016X}",
            "in",
            "text",
            f"message number {i}: hello there, how are you?",
            "received",
            f"2026-11-21T10:{i % 60:02d}:00+00:00",
            "2026-11-22T10:00:00+00:00",
        )
        for i in range(n)
    ]
    with scratch_dir("ref") as tmp:
        db = sqlite_connect(tmp / "ref.db")
        db.execute(
            "CREATE TABLE messages (id TEXT PRIMARY KEY, session_id TEXT, conversation_id TEXT,"
            " wa_id TEXT, direction TEXT, kind TEXT, text TEXT, status TEXT, timestamp TEXT,"
            " created_at TEXT)"
        )
        start = time.perf_counter()
        for i in range(0, n, CHUNK):
            db.execute("BEGIN")
            db.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?)", rows[i : i + CHUNK])
            db.execute("COMMIT")
        elapsed = time.perf_counter() - start
        db.close()
    return n / elapsed


async def framework_floor(n: int) -> float:
    """Not a target, a diagnostic: the same rows as the reference through SQLAlchemy Core on
    aiosqlite (what whatsgate's SQL adapter is built on), 500 per transaction. Returns rows/s:
    the ceiling of any import written on that stack."""
    from sqlalchemy import Column, MetaData, String, Table, insert

    from whatsgate.adapters.sql.database import create_engine_for

    names = ("id", "session_id", "conversation_id", "wa_id", "direction", "kind", "text")
    names += ("status", "timestamp", "created_at")
    metadata = MetaData()
    table = Table("messages", metadata, *(Column(c, String, primary_key=c == "id") for c in names))
    rows = [
        dict(zip(names, row, strict=True))
        for row in (
            (
                f"msg-{i:012d}",
                "session-1",
                f"conv-{i // PER_CHAT:06d}",
                f"3EB0{i:016X}",
                "in",
                "text",
                f"message number {i}: hello there, how are you?",
                "received",
                f"2026-11-21T10:{i % 60:02d}:00+00:00",
                "2026-11-22T10:00:00+00:00",
            )
            for i in range(n)
        )
    ]
    with scratch_dir("floor") as tmp:
        engine = create_engine_for(sqlite_url(tmp / "floor.db"))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            stmt = insert(table)
            start = time.perf_counter()
            for i in range(0, n, CHUNK):
                async with engine.begin() as conn:
                    await conn.execute(stmt, rows[i : i + CHUNK])
            elapsed = time.perf_counter() - start
        finally:
            await engine.dispose()
    return n / elapsed


#: The columns of a stored message, as the import writes them.
MESSAGE_COLUMNS = (
    "id, organization_id, session_id, conversation_id, wa_id, chat, sender, sender_alt,"
    " push_name, direction, kind, text, media, location, contact, poll, quoted_wa_id,"
    " target_wa_id, unsupported_type, reactions, edited_at, revoked_at, timestamp, status,"
    " status_error, created_at"
)


async def schema_floor(n: int) -> float:
    """Not a target, a diagnostic: raw sqlite3 ``executemany`` of the message rows an import
    of n stores (26 columns, the texts the import writes), 500 per transaction, into
    whatsgate's migrated schema (its indexes and foreign keys) with whatsgate's pragmas.
    Returns rows/s: the ceiling of SQLite itself for these rows, with no Python above the
    driver."""
    from whatsgate.adapters.sql.database import create_engine_for
    from whatsgate.adapters.sql.migrations import migrate
    from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory

    with scratch_dir("schema") as tmp:
        path = tmp / "whatsgate.db"
        await migrate(sqlite_url(path))
        engine = create_engine_for(sqlite_url(path))
        try:
            session_id = await seed_session(SqlUnitOfWorkFactory(engine))
        finally:
            await engine.dispose()
        db = sqlite_connect(path)
        (organization_id,) = db.execute(
            "SELECT organization_id FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        created = "2026-11-22 10:00:00.000000"
        rows = [
            (
                f"01900000-0000-7000-8000-{i:012x}",
                organization_id,
                session_id,
                f"conv-{i // PER_CHAT:06d}",
                f"3EB0{i:016X}",
                f"{phone(i // PER_CHAT)}@s.whatsapp.net",
                f"{phone(i // PER_CHAT)}@s.whatsapp.net",
                None,
                f"Contact {i // PER_CHAT}",
                "in",
                "text",
                f"message number {i}: hello there, how are you?",
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                "{}",
                None,
                None,
                f"2026-11-21 10:{i % 60:02d}:00.000000",
                "received",
                None,
                created,
            )
            for i in range(n)
        ]
        sql = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({', '.join('?' * 26)})"
        start = time.perf_counter()
        for i in range(0, n, CHUNK):
            db.execute("BEGIN")
            db.executemany(sql, rows[i : i + CHUNK])
            db.execute("COMMIT")
        elapsed = time.perf_counter() - start
        db.close()
    return n / elapsed


def history_batch(n: int) -> Any:
    """One ``HistoryBatch`` of n messages over n/50 direct chats, with their contacts."""
    from whatsgate.domain.jid import Jid
    from whatsgate.ports.engine import ContactInfo, HistoryBatch

    chats = max(n // PER_CHAT, 1)
    # WhatsApp's history sync hands conversations one after the other, each with its
    # messages: message i belongs to chat i // PER_CHAT.
    messages = tuple(incoming(i, n, chats, chat=i // PER_CHAT) for i in range(n))
    contacts = tuple(
        ContactInfo(jid=Jid.parse(f"{phone(c)}@s.whatsapp.net"), name=f"Contact {c}")
        for c in range(chats)
    )
    return HistoryBatch(messages=messages, contacts=contacts, progress=100, is_last=True)


async def import_into(engine: Any, batch: Any) -> tuple[float, float]:
    """ImportHistory of ``batch`` into the migrated database of ``engine``. Returns
    messages/s and the process's CPU time per message in µs (every thread: the driver's too)."""
    from whatsgate.adapters.clock import SystemClock
    from whatsgate.adapters.sql.uow import SqlUnitOfWorkFactory
    from whatsgate.usecases.history import HistorySettings, ImportHistory, ImportHistoryCommand

    n = len(batch.messages)
    uow = SqlUnitOfWorkFactory(engine)
    session_id = await seed_session(uow)
    use_case = ImportHistory(uow, SystemClock(), HistorySettings(chunk_size=CHUNK))
    start, cpu = time.perf_counter(), time.process_time()
    result = await use_case(ImportHistoryCommand(session_id=session_id, batch=batch))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if result.stored != n:
        raise RuntimeError(f"ImportHistory stored {result.stored} of {n} messages")
    return n / elapsed, cpu / n * 1e6


async def measured(n: int) -> tuple[float, float]:
    """ImportHistory of one batch of n messages on SQLite. Returns messages/s and the
    process's CPU time per message in µs (every thread: the driver's too)."""
    from whatsgate.adapters.sql.database import create_engine_for
    from whatsgate.adapters.sql.migrations import migrate

    batch = history_batch(n)
    with scratch_dir("history") as tmp:
        url = sqlite_url(tmp / "whatsgate.db")
        await migrate(url)
        engine = create_engine_for(url)
        try:
            return await import_into(engine, batch)
        finally:
            await engine.dispose()


async def measured_postgres(url: str, n: int) -> tuple[float, float]:
    """The same import on PostgreSQL (asyncpg), in a new migrated schema dropped afterwards.
    The CPU time is this process's only: the PostgreSQL server's is not counted."""
    batch = history_batch(n)
    async with postgres_engine(url, "history") as engine:
        return await import_into(engine, batch)


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    n = 1_000 if quick else 50_000
    runs = default_runs(quick, runs)
    results = Results(NAME, quick, runs, params={"messages": n, "per_transaction": CHUNK})
    why_not = missing(*MEASURED)
    pg_url, pg_why_not = postgres_url()

    def once() -> dict[str, float]:
        figures = {"reference_rows_per_s": reference(n)}
        if why_not is None:
            figures["sqlalchemy_core_rows_per_s"] = asyncio.run(framework_floor(n))
            figures["sqlite_schema_rows_per_s"] = asyncio.run(schema_floor(n))
            rate, cpu = asyncio.run(measured(n))
            figures["import_msgs_per_s"] = rate
            figures["import_cpu_us_per_msg"] = cpu
            if pg_url is not None:
                rate, cpu = asyncio.run(measured_postgres(pg_url, n))
                figures["pg_import_msgs_per_s"] = rate
                figures["pg_import_cpu_us_per_msg"] = cpu
        return figures

    collected = repeat(runs, once)
    results.add("reference_rows_per_s", "/s", collected["reference_rows_per_s"])
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    results.add("sqlalchemy_core_rows_per_s", "/s", collected["sqlalchemy_core_rows_per_s"])
    results.add("sqlite_schema_rows_per_s", "/s", collected["sqlite_schema_rows_per_s"])
    results.add("import_msgs_per_s", "/s", collected["import_msgs_per_s"])
    # Steadier than the rate on a shared machine; 25,000 msgs/s needs at most 40 µs.
    results.add("import_cpu_us_per_msg", "µs", collected["import_cpu_us_per_msg"])
    results.ratio("core_floor_ratio", "sqlalchemy_core_rows_per_s", "reference_rows_per_s")
    results.ratio("schema_floor_ratio", "sqlite_schema_rows_per_s", "reference_rows_per_s")
    ratio = results.ratio("ratio", "import_msgs_per_s", "reference_rows_per_s")
    rate = results.median("import_msgs_per_s")
    results.check("≥ 25,000 msgs/s", rate, rate >= 25_000)
    results.check("≥ 0.30x the reference", ratio, ratio >= 0.30)
    how = (
        "a new schema per run; its CPU is this process's only, not the PostgreSQL server's,"
        " which shares the cores"
    )
    add_postgres_row(results, collected, pg_url, pg_why_not, how)
    return finish(results)


if __name__ == "__main__":
    cli(main)
