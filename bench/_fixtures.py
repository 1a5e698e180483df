"""Test data and plumbing the benchmarks share (databases, sessions, messages, processes)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._harness import ROOT, Results

#: The pragmas whatsgate's SQLite adapter sets on each connection; references use the same.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)


def missing(*modules: str) -> str | None:
    """Why the measured path cannot run here (a module not on this branch yet), or None."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            return f"{name} is not importable ({exc})"
    return None


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory on the real disk (not tmpfs if avoidable: SQLite must fsync)."""
    base = os.environ.get("WHATSGATE_BENCH_TMP")
    with tempfile.TemporaryDirectory(prefix=f"wg-bench-{prefix}-", dir=base) as path:
        yield Path(path)


def sqlite_connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        connection.execute(pragma)
    return connection


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


#: Where the PostgreSQL rows run (``postgresql://user@host:port/db``); unset: they are skipped.
POSTGRES_ENV = "WHATSGATE_BENCH_POSTGRES_URL"


def postgres_url() -> tuple[str | None, str | None]:
    """The PostgreSQL URL to measure on, or None and why the PostgreSQL row is skipped."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return None, f"{POSTGRES_ENV} is not set"
    return url, None


async def _postgres_admin(url: str, statement: str) -> Any:
    from sqlalchemy import text

    from whatsgate.adapters.sql.database import create_engine_for

    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_engine_for(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def postgres_engine(url: str, prefix: str) -> AsyncIterator[Any]:
    """An engine (whatsgate's ``create_engine_for``, the server's own settings) on a new
    schema of its own, migrated, in the database at ``url``; the schema is dropped
    afterwards."""
    from whatsgate.adapters.sql.database import create_engine_for
    from whatsgate.adapters.sql.migrations import migrate

    schema = f"wg_bench_{prefix}_{uuid.uuid4().hex[:12]}"
    await _postgres_admin(url, f'CREATE SCHEMA "{schema}"')
    try:
        engine = create_engine_for(url, connect_args={"server_settings": {"search_path": schema}})
        try:
            await migrate(engine)
            yield engine
        finally:
            await engine.dispose()
    finally:
        await _postgres_admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def postgres_database(url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server at ``url`` (for a server process, which takes a URL
    only); yields its URL and drops it afterwards."""
    from sqlalchemy.engine import make_url

    name = f"wg_bench_{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_postgres_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def add_postgres_row(
    results: Results,
    collected: dict[str, list[float]],
    url: str | None,
    why_not: str | None,
    how: str,
) -> None:
    """Record the ``pg_*`` metrics collected and a note on how they were measured (``how``),
    or a note saying why the PostgreSQL row was skipped. No target: the issue's targets are
    SQLite's."""
    if url is None:
        results.notes.append(f"PostgreSQL row skipped: {why_not} (a postgresql:// URL measures it)")
        return
    for metric, values in collected.items():
        if metric.startswith("pg_"):
            unit = "µs" if "_us_" in metric else "ms" if metric.endswith("_ms") else "/s"
            results.add(metric, unit, values)
    server = asyncio.run(
        _postgres_admin(
            url,
            "SELECT split_part(current_setting('server_version'), ' ', 1)"
            " || ', synchronous_commit=' || current_setting('synchronous_commit')",
        )
    )
    results.notes.append(f"pg_*: the same path on PostgreSQL {server} (asyncpg), {how}; no target")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def spawn(module: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """``python -m <module> args`` with this tree's ``src`` and ``bench`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*filter(None, [env.get("PYTHONPATH")]), str(ROOT / "src"), str(ROOT)]
    )
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, **popen)


def start_server(
    module: str, *args: str, limit_s: float = 60.0, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int, dict[str, Any]]:
    """Spawn a server (``--port`` added) that prints ``READY <json>`` once started; returns
    the process, its port and that JSON. ``log``: where its stderr goes (else ours)."""
    import json
    import selectors

    port = free_port()
    stderr = log.open("ab") if log is not None else None
    try:
        process = spawn(module, *args, "--port", str(port), stdout=subprocess.PIPE, stderr=stderr)
    finally:
        if stderr is not None:
            stderr.close()
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + limit_s
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                where = f"; see {log}" if log is not None else ""
                raise RuntimeError(f"{module} did not start (exit {process.poll()}){where}")
            if selector.select(remaining):
                line = process.stdout.readline().decode()
                if line.startswith("READY "):
                    info: dict[str, Any] = json.loads(line[len("READY ") :])
                    break
        wait_port(port, timeout=remaining, process=process)
    except BaseException:
        stop(process)
        raise
    finally:
        selector.close()
    return process, port, info


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def now() -> datetime:
    return datetime.now(UTC)


def recent(i: int, total: int) -> datetime:
    """A timestamp within the last day (inside every history window), increasing with ``i``."""
    return now() - timedelta(hours=23) + timedelta(seconds=i * 80_000 / max(total, 1))


def phone(i: int) -> str:
    return f"55119{i:08d}"


async def seed_session(uow_factory: Any, name: str = "bench") -> str:
    """An organization, its admin and one session; returns the session id."""
    from whatsgate.domain.organization import Organization, Role, User
    from whatsgate.domain.session import Session

    at = now()
    organization = Organization(name=f"org {name}", created_at=at)
    user = User(organization_id=organization.id, name="admin", role=Role.ADMIN, created_at=at)
    session = Session(organization_id=organization.id, owner_id=user.id, name=name, created_at=at)
    async with uow_factory() as uow:
        await uow.organizations.add(organization)
        await uow.users.add(user)
        await uow.sessions.add(session)
        await uow.commit()
    return session.id


def incoming(
    i: int, total: int, chats: int, *, text: str | None = None, chat: int | None = None
) -> Any:
    """The i-th of ``total`` inbound text messages spread over ``chats`` direct chats (chat
    ``i % chats`` unless ``chat`` says which)."""
    from whatsgate.domain.jid import Jid
    from whatsgate.domain.message import MessageKind
    from whatsgate.ports.engine import IncomingMessage

    which = i % chats if chat is None else chat
    jid = Jid.parse(f"{phone(which)}@s.whatsapp.net")
    return IncomingMessage(
        wa_id=f"3EB0{i:016X}",
        chat=jid,
        sender=jid,
        push_name=f"Contact {which}",
        timestamp=recent(i, total),
        kind=MessageKind.TEXT,
        text=text if text is not None else f"message number {i}: hello there, how are you?",
    )
