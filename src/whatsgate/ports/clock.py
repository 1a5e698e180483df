from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """All timing comes from here, so tests run on a fake clock and never wait."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...
