"""``NeonizeEngine``: the real WhatsApp engine, one neonize client per session.

Device store: with SQLite (the default) each session's device keys live in their own file,
``<data_dir>/neonize/<session>.db``; with PostgreSQL they live in the app's database (neonize
opens a ``postgres://`` URL) and a session picks its device by its account JID. A session whose
stored device is missing or unreadable gets ``CredentialsUnreadable``, never a silent new QR;
``forget`` (or ``logout``) clears it so the session can pair again.

Import this module only when the neonize engine is chosen (see ``_runtime``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import resource
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from whatsgate.adapters.neonize import mapping
from whatsgate.adapters.neonize._runtime import aioze_client, ensure_not_forked
from whatsgate.adapters.neonize.connection import NeonizeConnection
from whatsgate.domain.errors import EngineError
from whatsgate.ports.engine import (
    CredentialsUnreadable,
    Disconnected,
    EngineConnection,
    EngineEvent,
    EngineListener,
    SessionRef,
    WhatsAppEngine,
)

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_DEVICE_SEPARATOR = "|\u0001|"


def neonize_store_url(database_url: str) -> str | None:
    """The ``postgres://`` URL neonize's Go side (lib/pq) opens, for a PostgreSQL app database.

    ``postgresql+asyncpg://u@h/db`` → ``postgres://u@h/db?sslmode=disable`` (lib/pq would
    otherwise require TLS). None for any other database: each session then gets a SQLite file.
    """
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        return None
    query = dict(parse_qsl(parts.query))
    query.setdefault("sslmode", "disable")
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


@dataclass(frozen=True, slots=True)
class _Plan:
    store: str
    jid: Any | None = None
    new_device: bool = False


def list_devices(store: str) -> list[str]:
    """The device JIDs a neonize store holds (blocking: run it in a thread).

    Raises ``EngineError`` when the store cannot be opened or read. Each call leaks the store
    connection neonize opens (it is never closed): use it where no other way exists (PostgreSQL).
    """
    callback = aioze_client.func_callback_bytes2(aioze_client.log_whatsmeow)
    raw = aioze_client.gocode.GetAllDevices(store.encode(), callback)
    text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    if text.startswith("error:"):
        raise EngineError(text.removeprefix("error:").strip())
    if not text:
        return []
    # "jid,push name,business name,initialized": names may hold commas, the JID never does.
    return [entry.split(",", 1)[0] for entry in text.split(_DEVICE_SEPARATOR) if entry]


def sqlite_devices(path: Path) -> list[str]:
    """The device JIDs of a session's SQLite store, read with Python's own sqlite3.

    Asking neonize instead (``list_devices``) opens a whatsmeow container that is never closed:
    one file descriptor leaked per call.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            rows = db.execute("SELECT jid FROM whatsmeow_device").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # created but never written: no device yet
        raise EngineError(str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise EngineError(str(exc)) from exc
    return [str(row[0]) for row in rows]


class StoreUnavailable(EngineError):
    """The device store's database cannot be reached (it may come back)."""


async def postgres_devices(url: str) -> list[str]:
    """The device JIDs of the shared PostgreSQL store, read with asyncpg.

    Asking neonize (``list_devices``) would open a connection pool that is never closed: one
    PostgreSQL connection leaked per session start.
    """
    try:
        import asyncpg  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        log.warning("asyncpg is missing: reading the device store through neonize (leaks)")
        return await asyncio.to_thread(list_devices, url)
    try:
        db = await asyncpg.connect(url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(str(exc)) from exc
    try:
        rows = await db.fetch("SELECT jid FROM whatsmeow_device")
    except asyncpg.UndefinedTableError:
        return []  # whatsmeow creates its tables on the first start
    except asyncpg.PostgresError as exc:
        raise EngineError(str(exc)) from exc
    finally:
        await db.close()
    return [str(row["jid"]) for row in rows]


class NeonizeEngine(WhatsAppEngine):
    """WhatsApp through neonize (whatsmeow). One instance per process and event loop.

    - ``ack_timeout``: how long WhatsApp's event callback waits for a message to be committed.
    - ``startup_grace``: how long a client start keeps other lifecycle calls out while Go
      registers it (released as soon as Go shows a sign of life).
    - ``executor_reserve``: threads kept free beside the one each live client holds.
    - ``proxy``: connect to WhatsApp through this proxy (``socks5://host:port`` or
      ``http://host:port``); whatsmeow ignores the usual proxy environment variables.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        database_url: str | None = None,
        ack_timeout: float = 5.0,
        startup_grace: float = 0.5,
        executor_reserve: int = 8,
        proxy: str | None = None,
    ) -> None:
        self.store_dir = Path(data_dir) / "neonize"
        self.proxy = proxy
        raise_open_files_limit()
        self.postgres_url = neonize_store_url(database_url) if database_url else None
        self.ack_timeout = ack_timeout
        self.startup_grace = startup_grace
        self.executor_reserve = executor_reserve
        self._connections: dict[str, NeonizeConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._executor: ThreadPoolExecutor | None = None
        self._capacity = 0
        self._closed = False

    # -- the port ----------------------------------------------------------------------------

    async def open(self, ref: SessionRef, listener: EngineListener) -> EngineConnection:
        ensure_not_forked()
        if self._closed:
            raise EngineError("The neonize engine is closed.")
        loop = asyncio.get_running_loop()
        previous = self._connections.pop(ref.session_id, None)
        if previous is not None:
            await previous.disconnect()
        connection = NeonizeConnection(
            ref=ref,
            listener=listener,
            loop=loop,
            ack_timeout=self.ack_timeout,
            forget=self.forget,
            proxy=self.proxy,
        )
        self._connections[ref.session_id] = connection
        self._ensure_executor(loop)
        connection.start_consumer()
        task = loop.create_task(self._start(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return connection

    async def forget(self, ref: SessionRef) -> None:
        connection = self._connections.get(ref.session_id)
        if connection is not None and not connection.closed:
            await connection.disconnect()
        if self._connections.get(ref.session_id) is connection:
            self._connections.pop(ref.session_id, None)
        if self.postgres_url is not None:
            await self._forget_postgres(ref)
            return
        await asyncio.to_thread(_remove_store, self.store_path(ref.session_id))

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections.values()):
            await connection.disconnect()
        self._connections.clear()
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))
            self._executor.shutdown(wait=False)
            self._executor = None
            self._capacity = 0

    # -- starting a client ---------------------------------------------------------------

    def store_path(self, session_id: str) -> Path:
        name = session_id if _SAFE_NAME.match(session_id) else _digest(session_id)
        return self.store_dir / f"{name}.db"

    async def _start(self, connection: NeonizeConnection) -> None:
        ref = connection.ref
        try:
            plan = await self._plan(ref)
            if not isinstance(plan, _Plan):
                connection.report(plan)
                return
            if connection.closed:
                return
            client = aioze_client.NewAClient(plan.store, jid=plan.jid, new_device=plan.new_device)
            uuid = f"{ref.session_id}#{next(self._ids)}".encode()
            _follow_whatsmeow_log_level()
            await connection.start(client, uuid, grace=self.startup_grace)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: the neonize client did not start", ref.session_id)
            connection.report(Disconnected(reason="network"))

    async def _plan(self, ref: SessionRef) -> _Plan | EngineEvent:
        if self.postgres_url is not None:
            store = self.postgres_url
        else:
            path = self.store_path(ref.session_id)
            store = str(path)
            if not path.exists():
                if ref.jid is not None:
                    return CredentialsUnreadable(
                        error=f"The device store of {ref.jid} is missing ({path})."
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
                return _Plan(store)
        try:
            if self.postgres_url is not None:
                devices = await postgres_devices(store)
            else:
                devices = await asyncio.to_thread(sqlite_devices, Path(store))
        except StoreUnavailable as exc:
            log.warning("session %s: device store unavailable: %s", ref.session_id, exc)
            return Disconnected(reason="device_store_unavailable")
        except EngineError as exc:
            return CredentialsUnreadable(error=f"The device store cannot be read: {exc}")
        if ref.jid is None:
            # A fresh pairing. SQLite: the session's own file (resumed if it holds a device).
            # PostgreSQL: the store is shared, so a brand-new device.
            return _Plan(store, new_device=self.postgres_url is not None)
        match = next((d for d in devices if _same_account(d, ref.jid.user)), None)
        if match is None:
            return CredentialsUnreadable(
                error=f"The device store holds no device for {ref.jid}; pair the session again."
            )
        if self.postgres_url is None:
            return _Plan(store)  # one device per file: neonize resumes it
        return _Plan(store, jid=mapping.device_proto_jid(match))

    def _ensure_executor(self, loop: asyncio.AbstractEventLoop) -> None:
        """Each live client holds one thread of the loop's default executor for its life."""
        needed = len(self._connections) + self.executor_reserve
        if needed <= self._capacity:
            return
        capacity = max(2 * needed, 16)
        executor = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="whatsgate-neonize")
        loop.set_default_executor(executor)
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # busy threads finish their call, then exit
        self._executor = executor
        self._capacity = capacity

    async def _forget_postgres(self, ref: SessionRef) -> None:
        if ref.jid is None:
            return
        try:
            import asyncpg  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            log.warning("asyncpg is missing: the device of %s stays in PostgreSQL", ref.jid)
            return
        user = ref.jid.user
        conn = await asyncpg.connect(self.postgres_url)
        try:
            await conn.execute(
                "DELETE FROM whatsmeow_device WHERE jid LIKE $1 OR jid LIKE $2 OR jid LIKE $3",
                f"{user}:%",
                f"{user}.%",
                f"{user}@%",
            )
        finally:
            await conn.close()

    # -- introspection (tests, health) ------------------------------------------------------

    def connection(self, session_id: str) -> NeonizeConnection | None:
        return self._connections.get(session_id)


def _follow_whatsmeow_log_level() -> None:
    """neonize tells Go to log at its own logger's level (NOTSET: everything); the app sets the
    ``whatsmeow`` logger's level instead, and Go follows it."""
    level = logging.getLogger("whatsmeow").getEffectiveLevel()
    aioze_client.log.setLevel(level)


def _remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _same_account(device_jid: str, user: str) -> bool:
    head = device_jid.split("@", 1)[0]
    return head.split(":", 1)[0].split(".", 1)[0] == user


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the new soft limit.

    neonize 0.5.2 opens a session's device store at every client start and never closes it,
    so each reconnect attempt keeps one more file (or PostgreSQL connection) open. Until that
    is fixed upstream, the headroom keeps a long outage from exhausting a 1,024 soft limit
    within minutes (restarting the process releases them).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        log.warning("could not raise the open files limit from %d to %d", soft, target)
        return soft
    log.info(
        "open files limit raised from %d to %d (neonize keeps device stores open)", soft, target
    )
    return target
