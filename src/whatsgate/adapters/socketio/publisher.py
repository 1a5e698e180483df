from __future__ import annotations

from typing import Any

from whatsgate.adapters.socketio.server import session_room, user_room
from whatsgate.domain.events import StoredEvent
from whatsgate.ports.publisher import EventPublisher


class SocketIOPublisher(EventPublisher):
    """Emits each stored event, as its envelope under its name (``message.new``…), to the
    session's room and, for a conversation assigned to someone, to that user's personal room
    (a socket in both gets it once). With Redis, every node's sockets get it."""

    def __init__(self, sio: Any) -> None:
        self.sio = sio

    async def publish(self, event: StoredEvent) -> None:
        rooms = [session_room(event.session_id)]
        if event.assignee_id:
            rooms.append(user_room(event.assignee_id))
        await self.sio.emit(event.name, event.envelope(), to=rooms)
