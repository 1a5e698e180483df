"""The engine with neonize's real Go client, on this machine with no route to WhatsApp.

Every test is bounded in time. What could abort the whole process (Go's "concurrent map
writes", a segfault) runs in a subprocess, so a regression fails one test, not the run.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.adapters.neonize import protos as p
from tests.adapters.neonize.conftest import OFFLINE_PROXY, Recorder, until
from whatsgate.adapters.neonize import _runtime
from whatsgate.adapters.neonize.engine import (
    NeonizeEngine,
    list_devices,
    neonize_store_url,
    sqlite_devices,
)
from whatsgate.domain.errors import EngineError, SessionNotConnected
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind
from whatsgate.ports.engine import (
    CredentialsUnreadable,
    Disconnected,
    OutgoingMessage,
    QrCode,
    SessionRef,
)

ROOT = Path(__file__).resolve().parents[3]
ME = Jid.phone(p.ME)


def neonize_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("whatsgate-neonize")]


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )


def fake_device(store: Path, device_jid: str) -> None:
    """A stored device as whatsmeow writes it after pairing (random keys: we never log in)."""
    list_devices(str(store))  # lets whatsmeow create its schema
    with sqlite3.connect(store) as db:
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key,"
            " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
            " adv_account_sig, adv_account_sig_key, adv_device_sig)"
            " VALUES (?, 1, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (
                device_jid,
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


async def test_an_offline_session_reports_the_network_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    threads_before = threading.active_count()
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    recorder = Recorder()
    started = time.monotonic()
    connection = await engine.open(SessionRef("s1"), recorder)
    await until(lambda: bool(recorder.events), within=10)
    assert time.monotonic() - started < 5
    assert recorder.events == [Disconnected(reason="network")]
    with pytest.raises(SessionNotConnected):
        await connection.send(OutgoingMessage(to=ME, kind=MessageKind.TEXT, text="hi"))
    await connection.disconnect()
    await engine.close()
    await until(lambda: not neonize_threads(), within=5)
    assert threading.active_count() <= threads_before
    assert (tmp_path / "neonize" / "s1.db").exists()  # the device store lives in the data dir


async def test_reconnecting_offline_does_not_pile_up_threads_or_tasks(tmp_path: Path) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    tasks_before = len(asyncio.all_tasks())
    peak_threads = 0
    for _ in range(8):  # what the reconnect back-off does, minus the waiting
        recorder = Recorder()
        await engine.open(SessionRef("s1"), recorder)
        await until(lambda: bool(recorder.events), within=10)  # noqa: B023
        assert recorder.events == [Disconnected(reason="network")]
        peak_threads = max(peak_threads, len(neonize_threads()))
    assert peak_threads <= 3  # idle executor threads are reused, not added
    await engine.close()
    await until(lambda: len(asyncio.all_tasks()) == tasks_before, within=5)
    await until(lambda: not neonize_threads(), within=5)


async def test_a_corrupt_device_store_is_reported_never_replaced(tmp_path: Path) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    store = engine.store_path("s1")
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    recorder = Recorder()
    await engine.open(SessionRef("s1", jid=ME), recorder)
    await until(lambda: bool(recorder.events), within=10)
    [event] = recorder.events
    assert isinstance(event, CredentialsUnreadable)
    assert store.read_bytes().startswith(b"this is not a database")  # no silent new device
    assert not recorder.of(QrCode)
    # Logging out (forget) clears it, so the session can pair again.
    await engine.forget(SessionRef("s1", jid=ME))
    assert not store.exists()
    again = Recorder()
    await engine.open(SessionRef("s1"), again)
    await until(lambda: bool(again.events), within=10)
    assert again.events == [Disconnected(reason="network")]
    await engine.close()


async def test_a_paired_session_whose_store_is_gone_is_reported(tmp_path: Path) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    recorder = Recorder()
    await engine.open(SessionRef("s1", jid=ME), recorder)
    await until(lambda: bool(recorder.events), within=10)
    [event] = recorder.events
    assert isinstance(event, CredentialsUnreadable)
    await engine.close()


async def test_a_restored_session_resumes_its_stored_device(tmp_path: Path) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    store = engine.store_path("s1")
    store.parent.mkdir(parents=True)
    fake_device(store, f"{p.ME}:12@s.whatsapp.net")
    assert list_devices(str(store)) == [f"{p.ME}:12@s.whatsapp.net"]
    assert sqlite_devices(store) == [f"{p.ME}:12@s.whatsapp.net"]
    recorder = Recorder()
    await engine.open(SessionRef("s1", jid=ME), recorder)
    await until(lambda: bool(recorder.events), within=10)
    # It went straight to connecting (and found no network): no QR for a stored device.
    assert recorder.events == [Disconnected(reason="network")]
    await engine.close()
    assert list_devices(str(store)) == [f"{p.ME}:12@s.whatsapp.net"]


async def test_a_store_holding_another_account_is_not_used(tmp_path: Path) -> None:
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    store = engine.store_path("s1")
    store.parent.mkdir(parents=True)
    fake_device(store, f"{p.ALICE}:3@s.whatsapp.net")
    recorder = Recorder()
    await engine.open(SessionRef("s1", jid=ME), recorder)
    await until(lambda: bool(recorder.events), within=10)
    assert isinstance(recorder.events[0], CredentialsUnreadable)
    await engine.close()


async def test_a_forked_process_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runtime, "_LOADED_IN_PID", os.getpid() + 1)
    engine = NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
    with pytest.raises(EngineError, match="forked"):
        await engine.open(SessionRef("s1"), Recorder())


def test_thirty_sessions_start_and_stop_concurrently_without_crashing(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import asyncio, time
        from whatsgate.adapters.neonize.engine import NeonizeEngine
        from whatsgate.ports.engine import SessionRef

        async def main():
            engine = NeonizeEngine({str(tmp_path)!r}, proxy={OFFLINE_PROXY!r})
            seen = {{}}
            def listener_for(sid):
                async def listener(event):
                    seen.setdefault(sid, event)
                return listener
            refs = [SessionRef(f"s{{n}}") for n in range(30)]
            # 30 start together, each reports, all stop together.
            connections = await asyncio.gather(
                *(engine.open(ref, listener_for(ref.session_id)) for ref in refs)
            )
            deadline = time.monotonic() + 30
            while len(seen) < 30 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert len(seen) == 30, len(seen)
            await asyncio.gather(*(c.disconnect() for c in connections))
            # 30 start and are stopped at once, while their clients are still starting, again
            # and again (without the lifecycle gate this aborts: "concurrent map writes").
            async def start_stop(n, ref):
                connection = await engine.open(ref, listener_for(ref.session_id))
                await asyncio.sleep(0.002 * (n % 10))
                await connection.disconnect()
            for _ in range(8):
                await asyncio.gather(*(start_stop(n, ref) for n, ref in enumerate(refs)))
            await engine.close()
            print("survived", flush=True)

        asyncio.run(main())
        """,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "survived" in result.stdout


def test_the_engine_is_imported_lazily_and_keeps_the_apps_logging() -> None:
    result = run_python(
        """
        import logging, sys
        root = logging.getLogger()
        root.setLevel(logging.WARNING)
        import whatsgate, whatsgate.adapters, whatsgate.adapters.neonize
        assert "neonize" not in sys.modules, "imported without choosing the engine"
        from whatsgate.adapters.neonize.engine import NeonizeEngine
        assert "neonize" in sys.modules
        assert root.level == logging.WARNING, root.level
        assert root.handlers == [], root.handlers
        print("intact")
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "intact" in result.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+asyncpg://postgres@127.0.0.1:5432/app",
            "postgres://postgres@127.0.0.1:5432/app?sslmode=disable",
        ),
        ("postgres://u:pw@db/app?sslmode=require", "postgres://u:pw@db/app?sslmode=require"),
        ("sqlite+aiosqlite:///data/whatsgate.db", None),
    ],
)
def test_the_device_store_follows_the_apps_database(url: str, expected: str | None) -> None:
    assert neonize_store_url(url) == expected


async def test_an_unreachable_postgres_store_is_a_passing_trouble_not_corruption(
    tmp_path: Path,
) -> None:
    engine = NeonizeEngine(
        tmp_path, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/app", proxy=OFFLINE_PROXY
    )
    recorder = Recorder()
    await engine.open(SessionRef("s1", jid=ME), recorder)
    await until(lambda: bool(recorder.events), within=15)
    assert recorder.events == [Disconnected(reason="device_store_unavailable")]
    await engine.close()


def test_choosing_neonize_raises_the_open_files_limit(tmp_path: Path) -> None:
    """neonize leaks one open device store per client start: the engine buys headroom."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, 1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        NeonizeEngine(tmp_path, proxy=OFFLINE_PROXY)
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert raised == hard or (hard == resource.RLIM_INFINITY and raised >= 1_048_576)
        assert raised >= low
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
