"""Media bytes of a message: from the MediaStore, or fetched through the engine once."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from dataclasses import dataclass

from whatsgate.domain.errors import (
    MediaNotFound,
    MessageNotFound,
    SendFailed,
    SessionNotConnected,
    SessionNotRunning,
)
from whatsgate.domain.message import Message
from whatsgate.ports.media import MediaStore
from whatsgate.ports.repositories import UnitOfWorkFactory
from whatsgate.usecases.connections import SessionConnections
from whatsgate.usecases.send import media_key

log = logging.getLogger("whatsgate.media")


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaCommand:
    message_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaContent:
    data: bytes
    mime: str
    file_name: str | None = None


class GetMessageMedia:
    """The media bytes of a message, with their type and file name.

    - Bytes already in the MediaStore are returned from there.
    - Otherwise they are downloaded through the session's engine connection on the first
      request, stored, and the message remembers where (and their size and sha256);
      concurrent first requests download once.
    - A message without media, or whose media WhatsApp no longer has, is ``MediaNotFound``;
      downloading needs the session connected.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, connections: SessionConnections, media: MediaStore
    ) -> None:
        self.uow = uow
        self.connections = connections
        self.media = media
        self._locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, command: MediaCommand) -> MediaContent:
        lock = self._locks.setdefault(command.message_id, asyncio.Lock())
        try:
            async with lock:
                return await self._get(command.message_id)
        finally:
            if not lock.locked() and self._locks.get(command.message_id) is lock:
                del self._locks[command.message_id]

    async def _get(self, message_id: str) -> MediaContent:
        async with self.uow() as uow:
            message = await uow.messages.get(message_id)
        if message is None:
            raise MessageNotFound(message_id=message_id)
        media = message.media
        if media is None:
            raise MediaNotFound(message_id=message_id)
        if media.storage_key is not None:
            data = await self.media.get(media.storage_key)
            if data is not None:
                return _content(message, data)
        if media.engine_ref is None:
            raise MediaNotFound(message_id=message_id)
        try:
            connection = self.connections.get(message.session_id)
        except SessionNotRunning as exc:
            raise SessionNotConnected(
                "The media is not stored yet and the session is not connected to fetch it.",
                session_id=message.session_id,
            ) from exc
        try:
            data = await connection.download_media(media)
        except SendFailed as exc:
            raise MediaNotFound(
                "WhatsApp no longer has this media.", message_id=message_id
            ) from exc
        key = media_key(message.session_id, message.id)
        await self.media.put(key, data)
        async with self.uow() as uow:
            stored = await uow.messages.get(message_id)
            if stored is not None and stored.media is not None:
                stored.media = dataclasses.replace(
                    stored.media,
                    storage_key=key,
                    size=stored.media.size or len(data),
                    sha256=stored.media.sha256 or hashlib.sha256(data).hexdigest(),
                )
                await uow.messages.save(stored)
                await uow.commit()
        log.info("message %s: media fetched (%d bytes)", message_id, len(data))
        return _content(message, data)


def _content(message: Message, data: bytes) -> MediaContent:
    assert message.media is not None
    return MediaContent(data=data, mime=message.media.mime, file_name=message.media.file_name)
