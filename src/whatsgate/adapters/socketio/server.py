"""socket.io: authenticated sockets, session rooms with replay, personal rooms.

Rooms: ``session:<id>`` gets every event of a session; ``user:<id>`` (joined on connect) gets
the conversation events of conversations assigned to that user. A socket joins a session room
only through ``subscribe``, which checks that its principal may see the session.

Replay without loss or duplicates: ``subscribe {session_id, after}`` first marks the socket as
catching up on that session (live events for it are then held in a buffer), joins the room,
sends the stored events after ``after`` from the event log, then the held events it has not
sent yet, and from then on drops any live event it already got (ids are ordered). All of it
happens on the node holding the socket, in its event loop, so no live event slips between the
log read and the room join. With Redis the same holds: every node screens the events it
delivers to its own sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import (
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    SessionNotFound,
    WhatsgateError,
)
from whatsgate.ports.repositories import UnitOfWorkFactory

log = logging.getLogger("whatsgate.socketio")

Authenticate = Callable[[str], Awaitable[Principal]]
#: ASGI application, loosely typed (Litestar, Starlette and socket.io all fit).
ASGIApp = Callable[..., Awaitable[None]]

SESSION_ROOM = "session:"
USER_ROOM = "user:"
REPLAY_PAGE = 500


def session_room(session_id: str) -> str:
    return SESSION_ROOM + session_id


def user_room(user_id: str) -> str:
    return USER_ROOM + user_id


def _event_key(data: Any) -> tuple[str, int] | None:
    """(session id, event id) of an envelope; None for anything else."""
    if not isinstance(data, Mapping):
        return None
    session_id, event_id = data.get("session_id"), data.get("id")
    if not isinstance(session_id, str) or not isinstance(event_id, str | int):
        return None
    try:
        return session_id, int(event_id)
    except ValueError:
        return None


def _rooms(room: Any) -> list[str]:
    if isinstance(room, str):
        return [room]
    if isinstance(room, Iterable):
        return [r for r in room if isinstance(r, str)]
    return []


class FastJson:
    """The ``json`` module socket.io encodes and decodes packets with: msgspec (several
    times faster than the standard library on an envelope), the standard library for anything
    msgspec refuses (so errors and edge cases stay the standard library's)."""

    _encoder = msgspec.json.Encoder()

    @classmethod
    def dumps(cls, obj: Any, **kwargs: Any) -> str:
        try:
            return cls._encoder.encode(obj).decode()
        except (TypeError, msgspec.EncodeError):
            return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            return json.loads(text, **kwargs)


class ReplayGate:
    """Per node: which sockets are catching up on which session, what they hold, and the
    last event id each got by replay (live events up to it are dropped)."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        self.floors: dict[tuple[str, str], int] = {}

    def screen(self, sids: Iterable[str], event: str, data: Any, key: tuple[str, int]) -> list[str]:
        """The sockets (of ``sids``) that must not get this live event (an envelope whose
        session id and event id are ``key``) now: those catching up (the event is held for
        them) and those that already got it by replay."""
        if not self.held and not self.floors:
            return []
        session_id, event_id = key
        skip = []
        for sid in sids:
            held = self.held.get((sid, session_id))
            if held is not None:
                held.append((event, data))
                skip.append(sid)
            elif self.floors.get((sid, session_id), -1) >= event_id:
                skip.append(sid)
        return skip

    def forget(self, sid: str, session_id: str | None = None) -> None:
        for table in (self.held, self.floors):
            for key in [k for k in table if k[0] == sid and session_id in (None, k[1])]:
                del table[key]


class _GatedEmit(socketio.AsyncManager):  # type: ignore[misc]
    """The local delivery of an emit, screened by the replay gate first.

    An envelope (an event of the log) to rooms, without a callback, takes a shorter way than
    python-socketio's: the packet is encoded once, without looking for binary parts (an
    envelope is JSON from the log), and queued on each socket in turn, without a task per
    socket and an ``asyncio.wait`` (queueing on a socket never blocks). Anything else goes
    python-socketio's way."""

    gate: ReplayGate

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        rooms = _rooms(room)
        if callback is not None or not any(r.startswith((SESSION_ROOM, USER_ROOM)) for r in rooms):
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
            return
        key = _event_key(data)
        if key is None or namespace not in self.rooms:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, **kwargs)
            return
        participants = list(self.get_participants(namespace, rooms))
        if not participants:
            return
        skips = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        held = self.gate.screen([sid for sid, _ in participants], event, data, key)
        skipped = {s for s in skips if s is not None}.union(held)
        pkt = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, data], binary=False
        )
        message = eio_packet.Packet(eio_packet.MESSAGE, pkt.encode())
        for sid, eio_sid in participants:
            if sid not in skipped:
                await self.server._send_eio_packet(eio_sid, message)


class GatedManager(_GatedEmit):
    """One node: rooms in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = ReplayGate()


class GatedRedisManager(socketio.AsyncRedisManager, _GatedEmit):  # type: ignore[misc]
    """Several nodes: emits go through Redis pub/sub to every node, each of which delivers to
    its own sockets through the gate."""

    def __init__(self, url: str, channel: str = "whatsgate") -> None:
        super().__init__(url, channel=channel)
        self.gate = ReplayGate()


def _parse_after(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput("`after` must be an event id.", field="after")
    try:
        after = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("`after` must be an event id.", field="after") from exc
    if after < 0:
        raise InvalidInput("`after` must be an event id.", field="after")
    return after


def _parse_subscription(data: Any) -> tuple[str, int | None]:
    if not isinstance(data, Mapping):
        raise InvalidInput("Send {session_id, after?}.")
    session_id = data.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise InvalidInput("`session_id` is required.", field="session_id")
    return session_id, _parse_after(data.get("after"))


def _token(auth: Any, environ: Mapping[str, Any]) -> str | None:
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    header = environ.get("HTTP_AUTHORIZATION")
    if isinstance(header, str) and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    key = environ.get("HTTP_X_API_KEY")
    return key if isinstance(key, str) and key else None


def error_ack(error: WhatsgateError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = dict(error.details)
    return {"ok": False, "error": body}


class RealtimeServer:
    """The socket.io server of whatsgate.

    - Connect with ``auth: {token}`` (an API key or a bearer token; an ``Authorization:
      Bearer`` or ``X-Api-Key`` header works too). No or a bad token: refused at connect.
    - On connect the socket joins its user's personal room.
    - ``subscribe {session_id, after?}``: only a session the principal may see (another
      organization's, or a session not shared with an agent, is refused). With ``after``,
      every stored event of the session after that id is sent first, in order, then live
      ones, none lost or twice. The ack comes after the replay: ``{ok: true, replayed: n}``
      or ``{ok: false, error: {code, message}}``.
    - ``unsubscribe {session_id}``: leaves the session room.
    """

    def __init__(
        self,
        authenticate: Authenticate,
        uow: UnitOfWorkFactory,
        *,
        redis_url: str | None = None,
        redis_channel: str = "whatsgate",
        cors_allowed_origins: str | list[str] = "*",
        socketio_path: str = "socket.io",
    ) -> None:
        self.authenticate = authenticate
        self.uow = uow
        self.socketio_path = socketio_path
        self.manager: GatedManager | GatedRedisManager = (
            GatedRedisManager(redis_url, channel=redis_channel) if redis_url else GatedManager()
        )
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            client_manager=self.manager,
            cors_allowed_origins=cors_allowed_origins,
            json=FastJson,
            logger=False,
            engineio_logger=False,
        )
        self._principals: dict[str, Principal] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("subscribe", self._subscribe)
        self.sio.on("unsubscribe", self._unsubscribe)

    @property
    def gate(self) -> ReplayGate:
        return self.manager.gate

    def asgi_app(self, other_asgi_app: ASGIApp | None = None) -> ASGIApp:
        """An ASGI app serving socket.io on ``/socket.io`` and passing every other request
        (and the lifespan) to ``other_asgi_app`` (the HTTP API)."""
        app: ASGIApp = socketio.ASGIApp(
            self.sio, other_asgi_app=other_asgi_app, socketio_path=self.socketio_path
        )
        return app

    async def start(self) -> None:
        """Start listening to Redis now rather than on the first connection (so that events
        another node publishes meanwhile are not missed). Nothing to do without Redis."""
        if not self.sio.manager_initialized:
            self.sio.manager_initialized = True
            self.manager.initialize()

    async def close(self) -> None:
        """Disconnect every socket and stop the background tasks (Redis listener)."""
        with contextlib.suppress(Exception):
            await self.sio.shutdown()
        thread = getattr(self.manager, "thread", None)
        if isinstance(thread, asyncio.Future):
            thread.cancel()
            with contextlib.suppress(BaseException):
                await thread
        redis = getattr(self.manager, "redis", None)
        if redis is not None:
            with contextlib.suppress(Exception):
                await redis.aclose()

    # -- handlers -------------------------------------------------------------------------

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        token = _token(auth, environ)
        if token is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "Missing token: connect with auth {token: <API key or bearer token>}.",
                {"code": NotAuthenticated.code},
            )
        try:
            principal = await self.authenticate(token)
        except WhatsgateError as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": exc.code}
            ) from exc
        self._principals[sid] = principal
        self._locks[sid] = asyncio.Lock()
        await self.sio.enter_room(sid, user_room(principal.user_id))
        log.debug("socket %s: connected as user %s", sid, principal.user_id)

    async def _disconnect(self, sid: str, *args: Any) -> None:
        self._principals.pop(sid, None)
        self._locks.pop(sid, None)
        self.gate.forget(sid)

    async def _subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        principal = self._principals.get(sid)
        lock = self._locks.get(sid)
        if principal is None or lock is None:
            return error_ack(NotAuthenticated())
        try:
            session_id, after = _parse_subscription(data)
            async with lock:
                await self._authorize(principal, session_id)
                replayed = await self._join(sid, session_id, after)
        except WhatsgateError as exc:
            return error_ack(exc)
        return {"ok": True, "session_id": session_id, "replayed": replayed}

    async def _unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        lock = self._locks.get(sid)
        if sid not in self._principals or lock is None:
            return error_ack(NotAuthenticated())
        try:
            session_id, _ = _parse_subscription(data)
        except WhatsgateError as exc:
            return error_ack(exc)
        async with lock:
            await self.sio.leave_room(sid, session_room(session_id))
            self.gate.forget(sid, session_id)
        return {"ok": True, "session_id": session_id}

    async def _authorize(self, principal: Principal, session_id: str) -> None:
        async with self.uow() as uow:
            session = await uow.sessions.get(session_id)
        if session is None or session.organization_id != principal.organization_id:
            raise SessionNotFound(session_id=session_id)
        if not principal.can_see(session):
            raise PermissionDenied("This session is not shared with you.")

    async def _join(self, sid: str, session_id: str, after: int | None) -> int:
        room = session_room(session_id)
        key = (sid, session_id)
        if after is None:
            self.gate.forget(sid, session_id)
            await self.sio.enter_room(sid, room)
            return 0
        gate = self.gate
        gate.floors.pop(key, None)
        gate.held[key] = []
        cursor, replayed = after, 0
        try:
            await self.sio.enter_room(sid, room)
            while True:
                async with self.uow() as uow:
                    page = await uow.events.after(cursor, session_id=session_id, limit=REPLAY_PAGE)
                for event in page:
                    await self.sio.emit(event.name, event.envelope(), to=sid, ignore_queue=True)
                    cursor, replayed = event.id, replayed + 1
                if len(page) < REPLAY_PAGE:
                    break
            while held := gate.held.get(key):
                gate.held[key] = []
                for name, envelope in held:
                    found = _event_key(envelope)
                    if found is not None and found[1] > cursor:
                        await self.sio.emit(name, envelope, to=sid, ignore_queue=True)
                        cursor = found[1]
        except BaseException:
            gate.held.pop(key, None)
            raise
        # No await between the last look at the buffer and this: the live path takes over.
        gate.held.pop(key, None)
        if sid in self._principals:  # not disconnected meanwhile
            gate.floors[key] = cursor
        return replayed
