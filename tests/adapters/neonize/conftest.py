"""Helpers to feed neonize events through the same C callbacks neonize's Go side calls."""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from whatsgate.adapters.neonize._runtime import aioze_client, reset_global_loop
from whatsgate.adapters.neonize.connection import NeonizeConnection
from whatsgate.adapters.neonize.engine import NeonizeEngine
from whatsgate.ports.engine import EngineEvent, SessionRef

#: A proxy on a closed loopback port: a real neonize client dials it and fails at once, so the
#: "offline" tests behave the same on a machine with internet and never reach WhatsApp.
OFFLINE_PROXY = "socks5://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _fresh_neonize_loop() -> Iterator[None]:
    """neonize remembers the first loop that connected (module-global): forget it each test."""
    reset_global_loop()
    yield
    reset_global_loop()


class Recorder:
    """A listener that records what it is given (the gateway side, as a test sees it)."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    async def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class GoSide:
    """Calls a connection's callbacks exactly as neonize's Go code does (ctypes, own thread)."""

    def __init__(self, client: Any, uuid: bytes) -> None:
        self.uuid = uuid
        self.event = aioze_client.func_callback_bytes(client.event.execute)
        self.qr = aioze_client.func_string(client._NewAClient__onQr)
        self.login = aioze_client.func_string(client._NewAClient__onLoginStatus)
        self._keep: list[Any] = []

    def fire(self, code: int, event: Any) -> None:
        """Blocking, like Go's call: returns when the Python callback returns."""
        data = event.SerializeToString()
        buffer = ctypes.create_string_buffer(data, len(data))
        self.event(self.uuid, ctypes.addressof(buffer), len(data), code)

    def _cstr(self, text: str) -> int:
        buffer = ctypes.create_string_buffer(text.encode())
        self._keep.append(buffer)
        return ctypes.addressof(buffer)

    def show_qr(self, code: str) -> None:
        self.qr(self._cstr(self.uuid.decode()), self._cstr(code))

    def login_status(self, status: str) -> None:
        self.login(self._cstr(self.uuid.decode()), self._cstr(status))


@pytest.fixture
async def wired(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., tuple[NeonizeConnection, GoSide]]]:
    """A connection on a real (never started) neonize client, and its Go side."""
    made: list[NeonizeConnection] = []

    def make(
        listener: Callable[[EngineEvent], Any], session_id: str = "s1", **options: Any
    ) -> tuple[NeonizeConnection, GoSide]:
        connection = NeonizeConnection(
            ref=SessionRef(session_id),
            listener=listener,
            loop=asyncio.get_running_loop(),
            **options,
        )
        client = aioze_client.NewAClient(str(tmp_path / f"{session_id}.db"))
        uuid = f"{session_id}#1".encode()
        connection.attach(client, uuid)
        connection.start_consumer()
        made.append(connection)
        return connection, GoSide(client, uuid)

    yield make
    for connection in made:
        await connection.disconnect()


class HandDrivenNeonizeEngine(NeonizeEngine):
    """The real engine, but the Go client is attached, not connected: the test is Go."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, ack_timeout=5, proxy=OFFLINE_PROXY)
        self.go: dict[str, GoSide] = {}

    async def _start(self, connection: NeonizeConnection) -> None:
        client = aioze_client.NewAClient(str(self.store_path(connection.ref.session_id)))
        uuid = f"{connection.ref.session_id}#test".encode()
        connection.attach(client, uuid)
        self.go[connection.ref.session_id] = GoSide(client, uuid)
