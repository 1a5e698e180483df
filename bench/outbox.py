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
import statistics
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


async def _drained(world: Any, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        async with world.uow() as unit:
            if await unit.outbox.pending_count() == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not drain")
        await asyncio.sleep(0.005)


async def measured(n: int, sessions: int, latency_n: int, rate: float) -> dict[str, float]:
    """Drain n queued sends over ``sessions`` sessions; then ``latency_n`` sends at ``rate``
    per second with the worker running. Returns sends/s and start latency percentiles."""
    from bench._world import World, paired_sessions, sql_store
    from whatsgate.domain.message import MessageKind
    from whatsgate.usecases.send import SendMessageCommand

    def command(sid: str, i: int, label: str) -> SendMessageCommand:
        return SendMessageCommand(
            session_id=sid, to=f"+55 11 9{i % 50:04d}-0000", kind=MessageKind.TEXT, text=label
        )

    with scratch_dir("outbox") as tmp:
        async with sql_store(tmp / "whatsgate.db") as uow:
            ids = await paired_sessions(uow, tmp, sessions)
            world = World(uow, tmp, pacing=False)
            await world.restore()
            await world.wait_connected(sessions)
            try:
                for i in range(n):
                    await world.send(command(ids[i % sessions], i, f"drain {i}"))
                start = time.perf_counter()
                world.outbox_worker.start()
                await _drained(world, limit_s=600)
                drain_s = time.perf_counter() - start
                sent = sum(1 for k in world.engine.send_started if k.startswith("drain "))
                if sent != n:
                    raise RuntimeError(f"{sent} of {n} sends reached the engine")
                committed: dict[str, int] = {}
                begin = time.perf_counter()
                for i in range(latency_n):
                    delay = begin + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    label = f"latency {i}"
                    await world.send(command(ids[i % sessions], i, label))
                    committed[label] = time.monotonic_ns()
                await _drained(world, limit_s=120)
            finally:
                await world.outbox_worker.stop()
                await world.connections.shutdown()
                await world.engine.close()
    started = world.engine.send_started
    latencies = sorted((started[k] - v) / 1e6 for k, v in committed.items())
    return {
        "sends_per_s": n / drain_s,
        "start_p50_ms": statistics.median(latencies),
        "start_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    n_ref, n, sessions, latency_n = (1_000, 100, 2, 50) if quick else (50_000, 5_000, 10, 1_000)
    rate = 100.0
    runs = default_runs(quick, runs)
    why_not = missing(*MEASURED)
    params = {
        "reference_rows": n_ref,
        "claim": CLAIM,
        "sends": n,
        "sessions": sessions,
        "latency_sends": latency_n,
        "latency_rate_per_s": rate,
    }
    results = Results(NAME, quick, runs, params=params)

    def once() -> dict[str, float]:
        figures = {"ref_rows_per_s": asyncio.run(reference(n_ref))}
        if why_not is None:
            figures.update(asyncio.run(measured(n, sessions, latency_n, rate)))
        return figures

    collected = repeat(runs, once)
    results.add("ref_rows_per_s", "/s", collected.pop("ref_rows_per_s"))
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    for metric, values in collected.items():
        results.add(metric, "ms" if metric.endswith("_ms") else "/s", values)
    ratio = results.ratio("ratio", "sends_per_s", "ref_rows_per_s")
    p99 = results.median("start_p99_ms")
    results.check("sends/s >= 0.5x the reference", ratio, ratio >= 0.5)
    results.check("p99 start latency < 100 ms", p99, p99 < 100)
    return finish(results)


if __name__ == "__main__":
    cli(main)
