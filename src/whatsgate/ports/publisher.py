from __future__ import annotations

from typing import Protocol

from whatsgate.domain.events import StoredEvent


class EventPublisher(Protocol):
    """Fans stored events out (socket.io, webhooks). Only stored events are ever published."""

    async def publish(self, event: StoredEvent) -> None: ...
