from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from whatsgate.adapters.sandbox import SandboxConnection, SandboxEngine, SandboxSettings
from whatsgate.ports.engine import EngineEvent, SessionRef
from whatsgate.testing import FakeClock, settle


@dataclass
class Recorder:
    """A listener that keeps every event it is given."""

    events: list[EngineEvent] = field(default_factory=list)

    async def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@dataclass
class Sandbox:
    clock: FakeClock
    data_dir: Path
    settings: SandboxSettings = field(default_factory=SandboxSettings)

    def __post_init__(self) -> None:
        self.engine = self.new_engine()

    def new_engine(self) -> SandboxEngine:
        """An engine over the same data directory: a process restart."""
        return SandboxEngine(self.clock, self.data_dir, self.settings, rng=random.Random(1))

    async def open(
        self, session_id: str = "s1", engine: SandboxEngine | None = None
    ) -> tuple[SandboxConnection, Recorder]:
        recorder = Recorder()
        connection = await (engine or self.engine).open(SessionRef(session_id), recorder)
        await settle()
        assert isinstance(connection, SandboxConnection)
        return connection, recorder

    async def paired(self, session_id: str = "s1") -> tuple[SandboxConnection, Recorder]:
        """A session paired with the default phone, its events so far cleared."""
        connection, recorder = await self.open(session_id)
        await self.engine.scan(session_id)
        await settle()
        recorder.events.clear()
        return connection, recorder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock, tmp_path: Path) -> Sandbox:
    return Sandbox(clock, tmp_path)
