"""One whatsgate process restoring N neonize sessions from stored devices, offline.

``python -m bench._neonize_proc seed --dir D --sessions N`` stores N paired sessions (SQLite)
and, for each, a neonize device store laid out as the engine lays them out
(``D/neonize/<session>.db``, one device in whatsmeow's schema, random keys: no login ever
happens). ``python -m bench._neonize_proc restore --dir D`` wires the session use cases on the
SQLite store with the real ``NeonizeEngine`` (proxy: a closed loopback port, so each client
fails at the proxy and never leaves 127.0.0.1), runs RestoreSessions, waits until every session
reports its first decisive state (``reconnecting``, reason ``network``) and prints one JSON line
of figures (see ``restore``).

neonize's Go runtime is not fork-safe: both actions run in a fresh process (spawned), and only
the restore imports the engine. The reconnect back-off is set far beyond the measurement so
the first attempts are measured alone (a reconnect would compete for the start gate).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench._sessions_proc import _since_process_start, _status_mb

#: A closed loopback port: the client fails at the proxy at once (as the adapter's tests do).
OFFLINE_PROXY = "socks5://127.0.0.1:9"


def _os_threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


async def seed(directory: Path, count: int) -> None:
    from bench._world import paired_sessions, sql_store
    from whatsgate.adapters.neonize.engine import NeonizeEngine, list_devices

    async with sql_store(directory / "whatsgate.db") as uow:
        ids = await paired_sessions(uow, directory, count, credentials=False)
    engine = NeonizeEngine(directory)
    engine.store_dir.mkdir(parents=True, exist_ok=True)
    template = directory / "template.db"
    list_devices(str(template))  # whatsmeow creates its schema (and leaks this connection)
    with sqlite3.connect(template) as source:
        for i, session_id in enumerate(ids):
            store = engine.store_path(session_id)
            with sqlite3.connect(store) as target:
                target.execute("PRAGMA synchronous=OFF")  # seeding only: no fsync per file
                source.backup(target)
                target.execute(
                    "INSERT INTO whatsmeow_device (jid, registration_id, noise_key,"
                    " identity_key, signed_pre_key, signed_pre_key_id, signed_pre_key_sig,"
                    " adv_key, adv_details, adv_account_sig, adv_account_sig_key,"
                    " adv_device_sig) VALUES (?, 1, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
                    (
                        f"5521{i:09d}:{1 + i % 20}@s.whatsapp.net",
                        os.urandom(32),
                        os.urandom(32),
                        os.urandom(32),
                        os.urandom(64),
                        os.urandom(32),
                        b"details",
                        os.urandom(64),
                        os.urandom(32),
                        os.urandom(64),
                    ),
                )
            target.close()


class GateClock:
    """Times each exclusive hold of neonize's gate (instrumentation only): client starts
    (``begin_write``/``end_write``, what ``NeonizeConnection.start`` calls) apart from client
    stops (``exclusive``)."""

    def __init__(self, gate: Any) -> None:
        self.holds: list[float] = []
        self.stops: list[float] = []
        self.peak_waiting = 0
        self._since = 0.0
        begin, end = gate.begin_write, gate.end_write

        async def begin_write() -> None:
            with gate._lock:
                self.peak_waiting = max(self.peak_waiting, gate._writers_waiting + 1)
            await begin()
            self._since = time.perf_counter()

        def end_write() -> None:
            self.holds.append(time.perf_counter() - self._since)
            end()

        @contextlib.asynccontextmanager
        async def exclusive() -> AsyncIterator[None]:
            await begin()
            since = time.perf_counter()
            try:
                yield
            finally:
                self.stops.append(time.perf_counter() - since)
                end()

        gate.begin_write = begin_write
        gate.end_write = end_write
        gate.exclusive = exclusive


async def restore(
    directory: Path, limit_s: float, grace: float, proxy: str = OFFLINE_PROXY
) -> dict[str, float]:
    """Figures: ``sessions``; ``opened_s`` (RestoreSessions returned: every open issued);
    ``restore_s`` (every session ``reconnecting``); ``ready_s`` (from process start, neonize's
    import included); ``rss_mb``, ``peak_rss_mb``; ``fds`` (open file descriptors);
    ``threads`` (OS threads, Go's included) at the end, ``peak_threads`` during the restore,
    ``py_threads``; the start gate's holds by client starts (``gate_hold_ms`` median,
    ``gate_hold_max_ms``, ``gate_busy_s`` in all, ``grace_hits``: holds that ran to the
    grace, ``starts``), ``stop_hold_ms`` (median hold of a client stop) and
    ``peak_start_queue`` (starts waiting for the gate at once)."""
    from bench._world import World, sql_store
    from whatsgate.adapters.neonize._runtime import GATE
    from whatsgate.adapters.neonize.engine import NeonizeEngine
    from whatsgate.domain.backoff import Backoff
    from whatsgate.domain.session import SessionStatus
    from whatsgate.usecases.sessions import SessionSettings

    clock = GateClock(GATE)
    base_threads = _os_threads()
    async with sql_store(directory / "whatsgate.db") as uow:
        engine = NeonizeEngine(directory, proxy=proxy, startup_grace=grace)
        settings = SessionSettings(backoff=Backoff(base=3600.0, cap=3600.0))
        world = World(uow, directory, engine=engine, settings=settings)
        peak_threads = _os_threads()
        start = time.perf_counter()
        result = await world.restore()
        opened = time.perf_counter() - start
        expected = len(result.restored) + len(result.failed)
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} sessions failed to restore")
        deadline = time.monotonic() + limit_s
        while True:
            peak_threads = max(peak_threads, _os_threads())
            async with uow() as unit:
                counts = await unit.sessions.count_by_status()
            if counts.get(str(SessionStatus.RECONNECTING), 0) >= expected:
                break
            if counts.get(str(SessionStatus.FAILED), 0):
                raise RuntimeError(f"sessions failed: {counts}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {expected} sessions reconnecting: {counts}")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - start
        ready = _since_process_start()
        gc.collect()
        holds = clock.holds or [0.0]
        figures = {
            "sessions": float(expected),
            "opened_s": opened,
            "restore_s": elapsed,
            "ready_s": ready,
            "rss_mb": _status_mb("VmRSS"),
            "peak_rss_mb": _status_mb("VmHWM"),
            "base_threads": float(base_threads),
            "threads": float(_os_threads()),
            "peak_threads": float(peak_threads),
            "py_threads": float(threading.active_count()),
            "gate_hold_ms": statistics.median(holds) * 1000,
            "gate_hold_max_ms": max(holds) * 1000,
            "gate_busy_s": sum(holds),
            "grace_hits": float(sum(1 for h in holds if h >= grace * 0.95)),
            "peak_start_queue": float(clock.peak_waiting),
            "starts": float(len(clock.holds)),
            "stop_hold_ms": statistics.median(clock.stops or [0.0]) * 1000,
            "fds": float(len(os.listdir("/proc/self/fd"))),
        }
        await world.connections.shutdown()
        await world.engine.close()
    return figures


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["seed", "restore"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--grace", type=float, default=0.5, help="the engine's startup_grace")
    parser.add_argument("--proxy", default=OFFLINE_PROXY, help="a loopback proxy URL only")
    args = parser.parse_args()
    if args.action == "seed":
        asyncio.run(seed(args.dir, args.sessions))
        return
    figures = asyncio.run(restore(args.dir, args.timeout, args.grace, args.proxy))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    _main()
