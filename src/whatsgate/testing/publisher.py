from __future__ import annotations

from whatsgate.domain.events import StoredEvent
from whatsgate.ports.publisher import EventPublisher


class RecordingPublisher(EventPublisher):
    """Keeps every published event, for assertions."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []

    async def publish(self, event: StoredEvent) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of(self, name: str) -> list[StoredEvent]:
        return [e for e in self.events if e.name == name]
