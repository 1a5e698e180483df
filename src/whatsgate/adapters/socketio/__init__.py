"""socket.io: the realtime half of the server (rooms, auth, replay) and its publisher."""

from whatsgate.adapters.socketio.publisher import SocketIOPublisher
from whatsgate.adapters.socketio.server import (
    Authenticate,
    RealtimeServer,
    session_room,
    user_room,
)

__all__ = ["Authenticate", "RealtimeServer", "SocketIOPublisher", "session_room", "user_room"]
