"""The process-wide gate over neonize's Go maps: starts and stops alone, calls together."""

from __future__ import annotations

import asyncio

import pytest

from whatsgate.adapters.neonize._runtime import ProcessGate


async def test_calls_run_together_but_never_with_a_start_or_stop() -> None:
    gate = ProcessGate(poll_seconds=0.001)
    log: list[str] = []
    inside: set[str] = set()
    overlaps: list[tuple[str, frozenset[str]]] = []

    async def call(name: str) -> None:
        async with gate.shared():
            if any(i.startswith("W") for i in inside):
                overlaps.append((name, frozenset(inside)))
            inside.add(name)
            await asyncio.sleep(0.02)
            inside.discard(name)
            log.append(name)

    async def lifecycle(name: str) -> None:
        async with gate.exclusive():
            if inside:
                overlaps.append((name, frozenset(inside)))
            inside.add(name)
            await asyncio.sleep(0.01)
            inside.discard(name)
            log.append(name)

    await asyncio.gather(
        call("R1"), call("R2"), lifecycle("W1"), call("R3"), lifecycle("W2"), call("R4")
    )
    assert overlaps == []
    assert sorted(log) == ["R1", "R2", "R3", "R4", "W1", "W2"]
    assert not gate.busy


async def test_a_waiting_start_is_not_starved_by_new_calls() -> None:
    gate = ProcessGate(poll_seconds=0.001)
    order: list[str] = []
    first_call_in = asyncio.Event()

    async def long_call() -> None:
        async with gate.shared():
            first_call_in.set()
            await asyncio.sleep(0.05)
        order.append("first call")

    async def start() -> None:
        await first_call_in.wait()
        async with gate.exclusive():
            order.append("start")

    async def later_call() -> None:
        await first_call_in.wait()
        await asyncio.sleep(0.01)  # arrives while the start waits
        async with gate.shared():
            order.append("later call")

    await asyncio.gather(long_call(), start(), later_call())
    assert order == ["first call", "start", "later call"]


async def test_waiting_starts_go_in_arrival_order_each_handed_the_gate() -> None:
    """Starts queued behind a holder (a restore queues hundreds) get the gate one after the
    other in the order they came, each handed it when the one before leaves: none polls."""
    gate = ProcessGate(poll_seconds=3600)  # a poll would never come back in time
    order: list[int] = []
    await gate.begin_write()

    async def start(n: int) -> None:
        async with gate.exclusive():
            order.append(n)
            await asyncio.sleep(0)

    waiting = [asyncio.ensure_future(start(n)) for n in range(20)]
    await asyncio.sleep(0.01)
    assert order == []
    gate.end_write()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert order == list(range(20))
    assert not gate.busy


async def test_a_start_that_stops_waiting_never_keeps_the_gate() -> None:
    gate = ProcessGate(poll_seconds=3600)
    await gate.begin_write()
    gone = asyncio.ensure_future(gate.begin_write())  # gives up while queued
    handed = asyncio.ensure_future(gate.begin_write())  # gives up once handed the gate
    last = asyncio.ensure_future(gate.begin_write())
    await asyncio.sleep(0.01)
    gone.cancel()
    gate.end_write()  # hands the gate to ``handed``...
    handed.cancel()  # ...which is cancelled before it runs: it passes the gate on
    await asyncio.wait_for(last, 5)
    for task in (gone, handed):
        with pytest.raises(asyncio.CancelledError):
            await task
    gate.end_write()
    assert not gate.busy


async def test_a_start_waits_for_the_last_call_then_gets_the_gate_at_once() -> None:
    gate = ProcessGate(poll_seconds=3600)
    async with gate.shared():
        start = asyncio.ensure_future(gate.begin_write())
        await asyncio.sleep(0.01)
        assert not start.done()
    await asyncio.wait_for(start, 5)  # handed over by the call that left
    gate.end_write()
    assert not gate.busy
