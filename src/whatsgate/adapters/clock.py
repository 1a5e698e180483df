"""The real clock: wall time in UTC and ``asyncio.sleep``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from whatsgate.ports.clock import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
