"""The process-wide gate over neonize's Go maps: starts and stops alone, calls together."""

from __future__ import annotations

import asyncio

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
