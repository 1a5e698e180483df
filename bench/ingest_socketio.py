"""Ingest → socket.io: p50/p99 from an engine event to a subscribed python-socketio client,
at 500 msgs/s, against an emit of the same payload straight from python-socketio.

Reference: a plain python-socketio server (uvicorn, own process) emitting ``message.new``
envelopes of the same size to a room, 500 per second, each stamped with its emit time.

Measured: whatsgate's inbound path in a server process (uvicorn): an engine ``IncomingMessage``
stamped with its time of arrival goes through ``ProcessIncomingMessage`` (group commit, SQLite),
the event log, the ``EventDispatcher`` and the socket.io publisher to a client subscribed to the
sessions, 500 per second in all over 10 sessions; each session hands its messages over one
after the other, as an engine does (it awaits the listener).

Latency = client's ``time.monotonic_ns()`` at reception minus the stamp (one machine, one
monotonic clock for every process). The client runs in this process, the server in another:
they share the 2 cores, in both paths.

Targets: p99 < 25 ms; p99 ≤ 4x the reference p99.

Also reported, not targets, from ``/proc``, from ``go`` to the last reception: each server's
CPU time (user + system) per message, and how long its event loop, runnable, waited for a
core (ms per second of the run: the scheduler's share of the stalls on a shared machine).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from bench._fixtures import missing, start_server, stop
from bench._harness import Results, cli, default_runs, finish, repeat
from bench._sio_clients import TimedClient, percentile

NAME = "ingest_socketio"
RATE = 500.0
SIZE = 870
MEASURED = (
    "whatsgate.adapters.sql.uow",
    "whatsgate.adapters.socketio",
    "whatsgate.usecases.ingest",
    "whatsgate.usecases.dispatch",
)


SESSIONS = 10


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU time of a process so far (every thread's time on a core, from
    ``/proc/<pid>/task/*/schedstat``, in nanoseconds: ``/proc/<pid>/stat`` counts in ticks of
    10 ms, and a quick run's reference server used less than one, so it read 0), and how long
    its main thread (the event loop) waited for a core while runnable, in seconds; zeros
    where /proc is missing. The servers' threads live as long as they do, so none of their
    time leaves the sum between two readings."""
    try:
        waited = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
        ran = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):  # a thread just gone
                ran += int((task / "schedstat").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0
    return ran / 1e9, waited


def _usage(before: tuple[float, float], after: tuple[float, float], count: int) -> list[float]:
    """CPU ms per message and the event loop's wait for a core, ms per second of run."""
    return [(after[0] - before[0]) * 1e3 / count, (after[1] - before[1]) * 1e3 / (count / RATE)]


def _stamp(data: Any) -> int | None:
    return int(data["t"]) if isinstance(data, dict) and "t" in data else None


def _text_stamp(data: Any) -> int | None:
    """whatsgate's ``message.new``: the stamp is the start of the message text."""
    try:
        text = data["data"]["text"]
    except (KeyError, TypeError):
        return None
    if not isinstance(text, str) or not text.startswith("t="):
        return None
    return int(text[2:].split(" ", 1)[0])


async def _reference(port: int, pid: int, count: int) -> dict[str, float]:
    client = TimedClient(_stamp)
    await client.connect(port)
    try:
        await client.call("subscribe", {})
        client.expect(count)
        cpu = _cpu_s(pid)
        await client.call("go", {"count": count, "rate": RATE, "size": SIZE})
        await asyncio.wait_for(client.done.wait(), timeout=count / RATE + 30)
        cpu_ms, wait_ms = _usage(cpu, _cpu_s(pid), count)
    finally:
        await client.close()
    ms = [v / 1e6 for v in client.latencies_ns]
    return {
        "ref_p50_ms": percentile(ms, 0.50),
        "ref_p99_ms": percentile(ms, 0.99),
        "ref_server_cpu_ms_per_msg": cpu_ms,
        "ref_server_runq_wait_ms_per_s": wait_ms,
    }


def reference(count: int) -> dict[str, float]:
    server, port, _ = start_server("bench._sio_server", "ref")
    try:
        return asyncio.run(_reference(port, server.pid, count))
    finally:
        stop(server)


async def _measured(port: int, pid: int, info: dict[str, Any], count: int) -> dict[str, float]:
    client = TimedClient(_text_stamp)
    await client.connect(port, auth={"token": info["token"]})
    try:
        for session_id in info["sessions"]:
            answer = await client.call("subscribe", {"session_id": session_id})
            if not answer.get("ok"):
                raise RuntimeError(f"subscribe refused: {answer}")
        client.expect(count)
        cpu = _cpu_s(pid)
        await client.call("go", {"count": count, "rate": RATE})
        await asyncio.wait_for(client.done.wait(), timeout=count / RATE + 60)
        cpu_ms, wait_ms = _usage(cpu, _cpu_s(pid), count)
    finally:
        await client.close()
    ms = [v / 1e6 for v in client.latencies_ns]
    return {
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "server_cpu_ms_per_msg": cpu_ms,
        "server_runq_wait_ms_per_s": wait_ms,
    }


def measured(count: int) -> dict[str, float]:
    server, port, info = start_server("bench._sio_server", "ingest", "--sessions", str(SESSIONS))
    try:
        return asyncio.run(_measured(port, server.pid, info, count))
    finally:
        stop(server)


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    count = 100 if quick else 5_000
    runs = default_runs(quick, runs)
    why_not = missing(*MEASURED)
    params = {"messages": count, "rate_per_s": RATE, "sessions": SESSIONS, "ref_bytes": SIZE}
    results = Results(NAME, quick, runs, params=params)

    def once() -> dict[str, float]:
        figures = reference(count)
        if why_not is None:
            figures.update(measured(count))
        return figures

    collected = repeat(runs, once)
    for metric, values in collected.items():
        results.add(metric, "ms", values)
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    ratio = results.ratio("p99_ratio", "p99_ms", "ref_p99_ms")
    p99 = results.median("p99_ms")
    results.check("p99 < 25 ms", p99, p99 < 25)
    results.check("p99 <= 4x the reference p99", ratio, ratio <= 4)
    return finish(results)


if __name__ == "__main__":
    cli(main)
