"""One whatsgate process restoring N sandbox sessions: its start-up time and memory.

``python -m bench._sessions_proc seed --dir D --sessions N`` stores N paired sessions (SQLite
and sandbox credentials in D); ``python -m bench._sessions_proc restore --dir D`` starts the
use cases, runs RestoreSessions, waits until every session is connected and prints one JSON
line: ``{"sessions", "restore_s", "ready_s", "rss_mb", "peak_rss_mb"}`` (``ready_s``: from
the process's start, imports and migration included, to every session connected). Seeding
runs in its own process so its garbage is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from pathlib import Path


def _since_process_start() -> float:
    """Seconds since this process was started (Linux: /proc, 10 ms resolution)."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def seed(directory: Path, count: int) -> None:
    from bench._world import paired_sessions, sql_store

    async with sql_store(directory / "whatsgate.db") as uow:
        await paired_sessions(uow, directory, count)


async def restore(directory: Path, limit_s: float) -> dict[str, float]:
    from bench._world import World, sql_store
    from whatsgate.domain.session import SessionStatus

    async with sql_store(directory / "whatsgate.db") as uow:
        world = World(uow, directory)
        start = time.perf_counter()
        result = await world.restore()
        expected = len(result.restored) + len(result.failed)
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} sessions failed to restore")
        deadline = time.monotonic() + limit_s
        while True:
            async with uow() as unit:
                counts = await unit.sessions.count_by_status()
            if counts.get(str(SessionStatus.CONNECTED), 0) >= expected:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {expected} sessions connected: {counts}")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        ready = _since_process_start()
        gc.collect()
        figures = {
            "sessions": float(expected),
            "restore_s": elapsed,
            "ready_s": ready,
            "rss_mb": _status_mb("VmRSS"),
            "peak_rss_mb": _status_mb("VmHWM"),
        }
        await world.connections.shutdown()
        await world.engine.close()
    return figures


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["seed", "restore"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.action == "seed":
        asyncio.run(seed(args.dir, args.sessions))
        return
    print(json.dumps(asyncio.run(restore(args.dir, args.timeout))), flush=True)


if __name__ == "__main__":
    _main()
