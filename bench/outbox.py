"""Outbox: sends/s drained to the sandbox engine with pacing off, and the latency from commit
to send start, against claim-and-mark-done of 100 outbox rows per statement.

Reference: SQLAlchemy async on aiosqlite (whatsgate's pragmas), an outbox table of N pending
rows (indexed on state, next attempt, id); one ``UPDATE … WHERE id IN (SELECT … LIMIT 100)
RETURNING id`` per transaction until none is left: the database's ceiling for taking work off
the queue, with no send and no bookkeeping.

Measured: ``SendMessage`` queues N texts on a connected sandbox session (SQLite); the
``OutboxWorker`` drains them to the sandbox engine (no pacing, no human-like typing). Sends/s
over the whole drain; start latency = the engine's ``send`` starting minus ``SendMessage``
returning (its commit).

Targets: ≥ 0.5x the reference; p99 start latency < 100 ms.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._fixtures import SQLITE_PRAGMAS, missing, scratch_dir, sqlite_url
from bench._harness import Results, cli, default_runs, finish, repeat

NAME = "outbox"
CLAIM = 100
MEASURED = ("whatsgate.adapters.sql.uow", "whatsgate.usecases.outbox", "whatsgate.usecases.send")


async def reference(n: int) -> float:
    """Claim-and-mark-done, 100 rows per statement. Returns rows/s."""
    from sqlalchemy import event, text
    from sqlalchemy.ext.asyncio import create_async_engine

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    with scratch_dir("ref") as tmp:
        engine = create_async_engine(sqlite_url(tmp / "ref.db"))
        event.listen(engine.sync_engine, "connect", pragmas)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "CREATE TABLE outbox (id TEXT PRIMARY KEY, session_id TEXT,"
                        " message_id TEXT, state TEXT, attempts INTEGER,"
                        " next_attempt_at TEXT, last_error TEXT, created_at TEXT,"
                        " updated_at TEXT, throttled INTEGER)"
                    )
                )
                await conn.execute(
                    text("CREATE INDEX ix_outbox_due ON outbox (state, next_attempt_at, id)")
                )
                await conn.execute(
                    text(
                        "INSERT INTO outbox VALUES (:id, 's1', :m, 'pending', 0,"
                        " '2026-11-22T10:00:00', NULL, '2026-11-22T10:00:00',"
                        " '2026-11-22T10:00:00', 0)"
                    ),
                    [{"id": f"ob-{i:012d}", "m": f"msg-{i:012d}"} for i in range(n)],
                )
            claim = text(
                "UPDATE outbox SET state = 'done', attempts = attempts + 1, updated_at = :now"
                " WHERE id IN (SELECT id FROM outbox WHERE state = 'pending'"
                " AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :limit)"
                " RETURNING id"
            )
            done = 0
            start = time.perf_counter()
            while True:
                async with engine.begin() as conn:
                    rows = (
                        await conn.execute(claim, {"now": "2026-11-22T11:00:00", "limit": CLAIM})
                    ).all()
                if not rows:
                    break
                done += len(rows)
            elapsed = time.perf_counter() - start
        finally:
            await engine.dispose()
    if done != n:
        raise RuntimeError(f"claimed {done} of {n} rows")
    return n / elapsed


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    n_ref = 1_000 if quick else 50_000
    runs = default_runs(quick, runs)
    why_not = missing(*MEASURED)
    results = Results(NAME, quick, runs, params={"reference_rows": n_ref, "claim": CLAIM})
    collected = repeat(runs, lambda: {"ref_rows_per_s": asyncio.run(reference(n_ref))})
    results.add("ref_rows_per_s", "/s", collected["ref_rows_per_s"])
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
    return finish(results)


if __name__ == "__main__":
    cli(main)
