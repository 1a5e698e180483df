"""Route every engine event of a session to the use case that handles it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from whatsgate.ports.engine import (
    Banned,
    Connected,
    ConnectFailed,
    CredentialsUnreadable,
    Disconnected,
    EngineEvent,
    LoggedOut,
    Paired,
    PairFailed,
    QrCode,
    Replaced,
)
from whatsgate.usecases.sessions import (
    DisconnectCommand,
    HandleDisconnect,
    SessionUpdate,
    UpdateUserWhatsAppSession,
)

log = logging.getLogger("whatsgate.engine")

TrafficHandler = Callable[[str, Any], Awaitable[object]]


class EngineEventRouter:
    """The one listener of every engine connection.

    - Lifecycle events (QR, paired, connected, drops, logout, bans…) go to
      UpdateUserWhatsAppSession and HandleDisconnect; an error there is logged, never raised
      into the engine.
    - Traffic events (messages, receipts, presence, history, contacts) go to the handler
      registered for their type. Their errors are raised: the engine must not acknowledge a
      message that was not stored.
    """

    def __init__(
        self,
        update: UpdateUserWhatsAppSession,
        disconnect: HandleDisconnect,
        traffic: Mapping[type, TrafficHandler] | None = None,
    ) -> None:
        self.update = update
        self.disconnect = disconnect
        self.traffic: dict[type, TrafficHandler] = dict(traffic or {})

    def register(self, event_type: type, handler: TrafficHandler) -> None:
        self.traffic[event_type] = handler

    async def __call__(self, session_id: str, event: EngineEvent) -> None:
        match event:
            case QrCode() | Paired() | PairFailed() | Connected():
                await self._lifecycle(
                    self.update(SessionUpdate(session_id=session_id, event=event))
                )
            case (
                Disconnected()
                | LoggedOut()
                | Banned()
                | Replaced()
                | ConnectFailed()
                | CredentialsUnreadable()
            ):
                await self._lifecycle(
                    self.disconnect(DisconnectCommand(session_id=session_id, event=event))
                )
            case _:
                handler = self.traffic.get(type(event))
                if handler is None:
                    log.debug("session %s: no handler for %s", session_id, type(event).__name__)
                    return
                await handler(session_id, event)

    @staticmethod
    async def _lifecycle(call: Awaitable[object]) -> None:
        try:
            await call
        except Exception:
            log.exception("a session lifecycle event could not be handled")
